"""The error every store command raises for input it cannot accept."""


class ControlError(ValueError):
    """A request that names something that does not exist, or cannot be done; `field` names
    the part of the request at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
