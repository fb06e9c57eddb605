"""taskscope.analysis"""
