"""taskscope.similarity"""
