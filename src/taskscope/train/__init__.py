"""taskscope.train"""
