"""xmc.search"""
