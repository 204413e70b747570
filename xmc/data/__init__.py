"""xmc.data"""
