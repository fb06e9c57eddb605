"""taskscope.represent"""
