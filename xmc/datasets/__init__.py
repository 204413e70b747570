"""xmc.datasets"""
