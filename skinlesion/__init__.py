"""The analysis core: load -> preprocess -> segment -> crop -> classify -> explain.

Flask-free. The web app, the batch CLI (predict.py) and the training scripts all
import from here, so an image is prepared the same way everywhere.
"""
