"""taskscope.evaluate"""
