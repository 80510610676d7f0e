"""Every table, imported here so Alembic and the app see the whole schema."""

from sendwell.models.base import Base
from sendwell.models.user import ApiToken, Role, SignInFailure, User, UserSession
from sendwell.models.workspace import Workspace

__all__ = ["ApiToken", "Base", "Role", "SignInFailure", "User", "UserSession", "Workspace"]
