"""Users, organizations, login and the current principal."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from grove_api.errors import Conflict, FieldProblem, Forbidden, Invalid, NotFound, Unauthenticated
from grove_api.services.security import ACCESS, REFRESH, LoginThrottle, Passwords, TokenClaims, Tokens
from grove_api.settings import Settings
from grove_api.store import DuplicateError, Store

log = logging.getLogger("grove_api")

ADMIN = "Admin"
ROLES = ("Admin", "Organization_Admin", "Application_Provider", "Infrastructure_Provider")
ROOT_ORGANIZATION = "root"
DEFAULT_ADMIN_PASSWORD = "Admin"  # noqa: S105 - the seed's documented first-start credentials
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
ORGANIZATION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Principal:
    """Who is calling, as read from the store on each request (not only from the token)."""

    id: str
    name: str
    roles: tuple[str, ...]
    organization: str

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def public_user(user: dict[str, Any]) -> dict[str, Any]:
    """A user as the API shows it: never with the password hash."""
    return {
        "_id": user["_id"],
        "name": user["name"],
        "email": user.get("email", ""),
        "created_at": user.get("created_at", ""),
        "roles": list(user.get("roles", [])),
    }


def _check_roles(roles: list[str], field: str) -> list[FieldProblem]:
    return [
        FieldProblem(f"{field}[{index}]", f"{role!r} is not a role: use one of {', '.join(ROLES)}")
        for index, role in enumerate(roles)
        if role not in ROLES
    ]


def _check_username(name: str, field: str = "name") -> list[FieldProblem]:
    if USERNAME_PATTERN.fullmatch(name):
        return []
    return [
        FieldProblem(field, "1 to 64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit")
    ]


def _check_password(password: str, field: str = "password") -> list[FieldProblem]:
    if len(password) < 4:
        return [FieldProblem(field, "must be at least 4 characters long")]
    if len(password) > 1024:
        return [FieldProblem(field, "must be at most 1024 characters long")]
    return []


class Accounts:
    def __init__(self, store: Store, settings: Settings, passwords: Passwords, tokens: Tokens) -> None:
        self.store = store
        self.settings = settings
        self.passwords = passwords
        self.tokens = tokens
        self.throttle = LoginThrottle(store, settings)

    # -- first start -------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Admin with all roles in the root organization, created once; warn while it keeps Admin/Admin."""
        admin = self._user_by_name(ADMIN)
        if admin is None:
            given = self.settings.admin_password
            password = given.get_secret_value() if given is not None else DEFAULT_ADMIN_PASSWORD
            try:
                admin = self.store.insert(
                    "users",
                    {
                        "name": ADMIN,
                        "email": "",
                        "created_at": now_iso(),
                        "roles": list(ROLES),
                        "password_hash": self.passwords.hash(password),
                    },
                )
                log.info("created the user Admin")
            except DuplicateError:  # another worker process made it first
                admin = self._user_by_name(ADMIN)
        assert admin is not None
        root = self._organization_by_name(ROOT_ORGANIZATION)
        if root is None:
            try:
                self.store.insert(
                    "organizations",
                    {
                        "name": ROOT_ORGANIZATION,
                        "member": [{"user_id": admin["_id"], "roles": list(ROLES)}],
                        "rev": 0,
                    },
                )
            except DuplicateError:
                pass
        if self.passwords.verify(admin.get("password_hash"), DEFAULT_ADMIN_PASSWORD):
            log.warning(
                "the user Admin still has the default password 'Admin': change it with "
                "POST /api/user/Admin {oldPassword, newPassword}"
            )

    # -- lookups -----------------------------------------------------------------------------
    def _user_by_name(self, name: str) -> dict[str, Any] | None:
        found = self.store.find("users", {"name": name}, limit=1)
        return found[0] if found else None

    def _organization_by_name(self, name: str) -> dict[str, Any] | None:
        found = self.store.find("organizations", {"name": name}, limit=1)
        return found[0] if found else None

    def root_organization_id(self) -> str:
        root = self._organization_by_name(ROOT_ORGANIZATION)
        return root["_id"] if root else ""

    # -- tokens ------------------------------------------------------------------------------
    def login(
        self, username: str, password: str, organization_name: str | None, client: str
    ) -> dict[str, str]:
        key = self.throttle.key(username, client)
        self.throttle.check(key)
        user = self._user_by_name(username)
        if not self.passwords.verify(user.get("password_hash") if user else None, password):
            self.throttle.failed(key)
            raise Unauthenticated("invalid username or password")
        assert user is not None
        organization = self._organization_by_name(organization_name or ROOT_ORGANIZATION)
        if organization_name and (
            organization is None or user["_id"] not in {m["user_id"] for m in organization.get("member", [])}
        ):
            self.throttle.failed(key)
            raise Unauthenticated(
                f"{username} is not a member of an organization named {organization_name!r}"
            )
        self.throttle.succeeded(key)
        if self.passwords.needs_rehash(user["password_hash"]):
            self.store.update("users", user["_id"], {"password_hash": self.passwords.hash(password)})
        org_id = organization["_id"] if organization else ""
        roles = list(user.get("roles", []))
        version = user.get("password_version", 0)
        return {
            "token": self.tokens.issue(username, roles, org_id, ACCESS, version),
            "refresh_token": self.tokens.issue(username, roles, org_id, REFRESH, version),
        }

    def _token_user(self, claims: TokenClaims) -> dict[str, Any]:
        user = self._user_by_name(claims.sub)
        if user is None:
            raise Unauthenticated("the token's user no longer exists")
        if claims.pwv != user.get("password_version", 0):
            raise Unauthenticated("the password changed since this token was issued: log in again")
        return user

    def refresh(self, refresh_token: str) -> dict[str, str]:
        claims = self.tokens.decode(refresh_token, REFRESH)
        user = self._token_user(claims)
        roles = list(user.get("roles", []))
        return {"token": self.tokens.issue(user["name"], roles, claims.organization, ACCESS, claims.pwv)}

    def principal(self, access_token: str) -> Principal:
        claims = self.tokens.decode(access_token, ACCESS)
        user = self._token_user(claims)
        return Principal(user["_id"], user["name"], tuple(user.get("roles", [])), claims.organization)

    # -- users -------------------------------------------------------------------------------
    @staticmethod
    def require_admin(caller: Principal) -> None:
        if not caller.is_admin:
            raise Forbidden("only a user with the Admin role may do this")

    def _visible_user(self, caller: Principal, username: str) -> dict[str, Any]:
        user = self._user_by_name(username)
        if user is None or (user["_id"] != caller.id and not caller.is_admin):
            raise NotFound(f"no user named {username!r}")
        return user

    def register(self, caller: Principal, name: str, password: str, email: str, roles: list[str]) -> dict:
        self.require_admin(caller)
        problems = _check_username(name) + _check_password(password) + _check_roles(roles, "roles")
        if problems:
            raise Invalid("the user cannot be registered", problems)
        try:
            user = self.store.insert(
                "users",
                {
                    "name": name,
                    "email": email,
                    "created_at": now_iso(),
                    "roles": list(dict.fromkeys(roles)),
                    "password_hash": self.passwords.hash(password),
                },
            )
        except DuplicateError:
            raise Conflict(f"a user named {name!r} already exists") from None
        organization = self.store.get("organizations", caller.organization) if caller.organization else None
        if organization is not None:
            self._set_membership(organization["_id"], user["_id"], user["roles"])
        return public_user(user)

    def get_user(self, caller: Principal, username: str) -> dict:
        return public_user(self._visible_user(caller, username))

    def roles_of(self, caller: Principal, username: str) -> list[str]:
        return list(self._visible_user(caller, username).get("roles", []))

    def put_user(self, caller: Principal, username: str, fields: dict[str, Any]) -> dict:
        """Admin creates or updates a user (email, roles, password)."""
        self.require_admin(caller)
        problems = _check_username(username, "username")
        if fields.get("roles") is not None:
            problems += _check_roles(fields["roles"], "roles")
        if fields.get("password") is not None:
            problems += _check_password(fields["password"])
        user = self._user_by_name(username)
        if user is None and fields.get("password") is None:
            problems.append(FieldProblem("password", "is required to create a user"))
        if (
            user is not None
            and user["name"] == ADMIN
            and fields.get("roles") is not None
            and ADMIN not in fields["roles"]
        ):
            problems.append(FieldProblem("roles", "Admin keeps the Admin role"))
        if problems:
            raise Invalid("the user cannot be saved", problems)
        changes: dict[str, Any] = {}
        if fields.get("email") is not None:
            changes["email"] = fields["email"]
        if fields.get("roles") is not None:
            changes["roles"] = list(dict.fromkeys(fields["roles"]))
        if fields.get("password") is not None:
            changes["password_hash"] = self.passwords.hash(fields["password"])
        if user is None:
            return self.register(
                caller, username, fields["password"], changes.get("email", ""), changes.get("roles", [])
            )
        if "password_hash" in changes:
            changes["password_version"] = user.get("password_version", 0) + 1
        updated = self.store.update("users", user["_id"], changes) or user
        return public_user(updated)

    def change_password(self, caller: Principal, username: str, old: str, new: str) -> None:
        user = self._visible_user(caller, username)
        if user["_id"] != caller.id:
            raise Forbidden(
                "only the user themself changes a password this way; Admin uses PUT /api/user/{username}"
            )
        problems = _check_password(new, "newPassword")
        if problems:
            raise Invalid("the password cannot be changed", problems)
        if not self.passwords.verify(user.get("password_hash"), old):
            raise Forbidden("the old password does not match")
        if old == new:
            raise Invalid(
                "the password cannot be changed",
                [FieldProblem("newPassword", "must differ from the old one")],
            )
        self.store.update(
            "users",
            user["_id"],
            {
                "password_hash": self.passwords.hash(new),
                "password_version": user.get("password_version", 0) + 1,
            },
        )

    def delete_user(self, caller: Principal, username: str) -> None:
        self.require_admin(caller)
        user = self._user_by_name(username)
        if user is None:
            raise NotFound(f"no user named {username!r}")
        if user["name"] == ADMIN:
            raise Conflict("Admin cannot be deleted")
        owned = self.store.count("applications", {"userId": user["name"]})
        if owned:
            raise Conflict(f"{username} owns {owned} application(s): delete them first")
        self.store.delete("users", user["_id"])
        for organization in self.store.find("organizations"):
            if any(m["user_id"] == user["_id"] for m in organization.get("member", [])):
                self._set_membership(organization["_id"], user["_id"], None)

    def list_users(self, caller: Principal) -> list[dict]:
        self.require_admin(caller)
        return [public_user(user) for user in self.store.find("users")]

    def list_organization_users(self, caller: Principal, organization_id: str) -> list[dict]:
        self.require_admin(caller)
        organization = self.store.get("organizations", organization_id)
        if organization is None:
            raise NotFound(f"no organization with id {organization_id!r}")
        users = []
        for member in organization.get("member", []):
            user = self.store.get("users", member["user_id"])
            if user is not None:
                users.append(public_user({**user, "roles": member.get("roles", [])}))
        return users

    # -- organizations -------------------------------------------------------------------------
    def _set_membership(self, organization_id: str, user_id: str, roles: list[str] | None) -> None:
        while True:
            organization = self.store.get("organizations", organization_id)
            if organization is None:
                return
            member = [m for m in organization.get("member", []) if m["user_id"] != user_id]
            if roles is not None:
                member.append({"user_id": user_id, "roles": list(roles)})
            rev = organization.get("rev", 0)
            if self.store.update(
                "organizations", organization_id, {"member": member, "rev": rev + 1}, expect={"rev": rev}
            ):
                return

    def _check_organization(self, name: str | None, member: list[dict] | None) -> None:
        problems = []
        if name is not None and not ORGANIZATION_PATTERN.fullmatch(name):
            problems.append(FieldProblem("name", "1 to 64 letters, digits, '_', '.' or '-'"))
        for index, item in enumerate(member or []):
            if self.store.get("users", item["user_id"]) is None:
                problems.append(
                    FieldProblem(f"member[{index}].user_id", f"no user with id {item['user_id']!r}")
                )
            problems += _check_roles(item.get("roles", []), f"member[{index}].roles")
        if problems:
            raise Invalid("the organization cannot be saved", problems)

    @staticmethod
    def public_organization(organization: dict) -> dict:
        return {
            "_id": organization["_id"],
            "name": organization["name"],
            "member": organization.get("member", []),
        }

    def list_organizations(self, caller: Principal) -> list[dict]:
        self.require_admin(caller)
        return [self.public_organization(o) for o in self.store.find("organizations")]

    def get_organization(self, caller: Principal, organization_id: str) -> dict:
        self.require_admin(caller)
        organization = self.store.get("organizations", organization_id)
        if organization is None:
            raise NotFound(f"no organization with id {organization_id!r}")
        return self.public_organization(organization)

    def create_organization(self, caller: Principal, name: str, member: list[dict]) -> dict:
        self.require_admin(caller)
        self._check_organization(name, member)
        try:
            organization = self.store.insert("organizations", {"name": name, "member": member, "rev": 0})
        except DuplicateError:
            raise Conflict(f"an organization named {name!r} already exists") from None
        return self.public_organization(organization)

    def update_organization(
        self, caller: Principal, organization_id: str, name: str | None, member: list[dict] | None
    ) -> dict:
        current = self.get_organization(caller, organization_id)
        if current["name"] == ROOT_ORGANIZATION and name not in (None, ROOT_ORGANIZATION):
            raise Conflict("the root organization keeps its name")
        self._check_organization(name, member)
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = name
        if member is not None:
            changes["member"] = member
        try:
            updated = self.store.update("organizations", organization_id, changes)
        except DuplicateError:
            raise Conflict(f"an organization named {name!r} already exists") from None
        if updated is None:
            raise NotFound(f"no organization with id {organization_id!r}")
        return self.public_organization(updated)

    def delete_organization(self, caller: Principal, organization_id: str) -> None:
        current = self.get_organization(caller, organization_id)
        if current["name"] == ROOT_ORGANIZATION:
            raise Conflict("the root organization cannot be deleted")
        self.store.delete("organizations", organization_id)
