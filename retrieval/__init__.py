"""Plain Python retrieval library: parsing, chunking, embedding, dense and sparse indexes.

Never imports Django; everything it needs comes in as constructor arguments.
"""
