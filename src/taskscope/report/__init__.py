"""taskscope.report"""
