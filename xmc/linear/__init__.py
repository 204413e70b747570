"""xmc.linear"""
