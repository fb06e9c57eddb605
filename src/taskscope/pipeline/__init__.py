"""taskscope.pipeline"""
