"""The error every store command raises for input it cannot accept."""


class ControlError(ValueError):
    """A request that names something that does not exist, or cannot be done; `field` names
    the part of the request at fault, `code` the kind of refusal ("invalid", "not_found")."""

    def __init__(self, message: str, field: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.field = field
        self.code = code
