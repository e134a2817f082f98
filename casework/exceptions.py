"""Domain errors. Their message is shown to the user as is: it is translated and says what to do."""


class BusinessRuleError(Exception):
    """A rule of the domain refuses the change; nothing was saved."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class NotAllowedError(BusinessRuleError):
    """The acting user may not do this (now)."""


class StaleStateError(BusinessRuleError):
    """The object changed since the user loaded the page (double submit, concurrent action)."""
