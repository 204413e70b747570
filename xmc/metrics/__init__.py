"""xmc.metrics"""
