"""The retrieval library's exception family; messages are written to be shown to users."""


class RetrievalError(Exception):
    """Base class of every error raised by retrieval/."""


class ParseError(RetrievalError):
    """A file could not be turned into text. The message says why, in one sentence."""


class UnsupportedTypeError(ParseError):
    """The file's content is of a type we do not ingest."""


class EmptyDocumentError(ParseError):
    """The file is empty or holds no text at all."""


class PasswordRequiredError(ParseError):
    """The document is encrypted with a user password and none was given."""


class WrongPasswordError(ParseError):
    """The password given does not open the document."""


class NoTextLayerError(ParseError):
    """Every page is an image without a text layer: the document needs OCR."""


class CorruptDocumentError(ParseError):
    """The file is truncated or damaged beyond repair."""


class MissingDependencyError(ParseError):
    """A library or program needed for this file (AES decryption, OCR) is not installed."""


class TooLargeError(ParseError):
    """Reading the file would pass a limit: a decompression bomb, a huge image, too many cells."""


class IndexNotBuiltError(RetrievalError):
    """An index was asked for before it was built or published."""


class IndexMismatchError(RetrievalError):
    """An index does not fit what it is used with (for example another embedding dimension)."""
