"""The root of every error feedline raises on purpose."""


class FeedlineError(Exception):
    """Base class: catch this to handle any feedline error.

    Each package defines specific subclasses in its own ``errors`` module; messages say what was
    wrong, with which input, and what to do about it.
    """
