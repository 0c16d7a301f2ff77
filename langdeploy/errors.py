"""One root error. Every message names the object at fault and how to fix it.

Each error carries the HTTP status it maps to, so serve/ turns it into a response without a
table of special cases, and `retry_after` for back-pressure errors.
"""

from __future__ import annotations


def sentence(text: str) -> str:
    """``text`` ended as a sentence, so that whatever follows it starts a new one: a message
    that ends with a quoted error ("...: line 1, column 5") gets its full stop."""
    text = text.rstrip()
    return text if not text or text.endswith((".", "!", "?", ":")) else text + "."


class LangdeployError(Exception):
    """Root of every error langdeploy raises on purpose."""

    status_code: int = 500
    error_type: str = "langdeploy_error"
    # What the CLI exits with: 1 for a failure, 2 for a usage error (as Click does).
    exit_code: int = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        # The fix is a sentence of its own: the message must not run into it.
        super().__init__(f"{sentence(message)} {fix}" if fix else message)

    @property
    def public_message(self) -> str:
        """A message that is safe to show to a client: no stack, no internals."""
        return str(self)


class ConfigError(LangdeployError):
    """A settings value or a config file is wrong; raised at start-up."""

    error_type = "config_error"


class OptionError(ConfigError):
    """A command-line option's value is out of bounds: a usage error, so the CLI exits 2."""

    exit_code = 2


class UnknownNameError(LangdeployError):
    """A name (model, chain, guard, template, target) is not registered."""

    status_code = 404
    error_type = "not_found"

    def __init__(self, kind: str, name: str, known: list[str], *, fix: str | None = None) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        listing = ", ".join(self.known) if self.known else "(none)"
        super().__init__(
            f"Unknown {kind} {name!r}. Known {kind}s: {listing}.",
            fix=fix,
        )


class InputError(LangdeployError):
    """A request's content is unusable (for example an empty question)."""

    status_code = 400
    error_type = "invalid_request"


class MissingDependencyError(LangdeployError):
    """An optional extra is not installed."""

    error_type = "missing_dependency"

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"The optional dependency {module!r} is not installed.",
            fix=f"Install it with: pip install 'langdeploy[{extra}]'",
        )


class ServiceUnavailable(LangdeployError):
    """The model is loading, overloaded, or its upstream is down: retry later."""

    status_code = 503
    error_type = "service_unavailable"

    def __init__(self, message: str, *, retry_after: float = 1.0, fix: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, fix=fix)


class ModelNotReady(ServiceUnavailable):
    """The model is still loading."""

    error_type = "model_loading"


class QueueFull(ServiceUnavailable):
    """The model's bounded queue is full; the client should back off."""

    status_code = 429
    error_type = "overloaded"


class UpstreamUnavailable(ServiceUnavailable):
    """An OpenAI-compatible upstream did not answer in time."""

    error_type = "upstream_unavailable"
