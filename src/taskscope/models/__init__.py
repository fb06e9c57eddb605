"""taskscope.models"""
