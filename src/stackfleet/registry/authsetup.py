"""Applying an access policy (access.py) to a cluster, as root, and turning auth on.

Idempotent: users and roles that exist are kept (their grants are added again, which etcd
accepts), so `lab up` and `stackfleet cluster enable-auth` can run again after adding machines.
Users get no password: with client-certificate auth the certificate is the credential.
"""
from __future__ import annotations

from typing import Any

import grpc
from aetcd import rpc

from .access import ROOT, Policy
from .connection import EtcdConnection

_EXISTS = ("already exists", "already granted")


async def apply_policy(conn: EtcdConnection, policy: Policy) -> None:
    """Creates every role and user of the policy, grants, then enables auth."""

    async def auth(method: str, request: Any) -> None:
        async def op(client: Any) -> None:
            try:
                await getattr(rpc.AuthStub(client.channel), method)(request, timeout=conn.timeout)
            except grpc.aio.AioRpcError as err:
                if not any(words in (err.details() or "") for words in _EXISTS):
                    raise
        await conn.call(op)

    for role in policy.roles:
        await auth("RoleAdd", rpc.AuthRoleAddRequest(name=role.name))
        for grant in role.grants:
            permission = rpc.Permission(permType=grant.kind, key=grant.key, range_end=grant.range_end)
            await auth("RoleGrantPermission", rpc.AuthRoleGrantPermissionRequest(name=role.name, perm=permission))
    await auth("RoleAdd", rpc.AuthRoleAddRequest(name=ROOT))  # etcd's built-in role: all keys
    for user in policy.users:
        await auth("UserAdd", rpc.AuthUserAddRequest(name=user.name, options=rpc.UserAddOptions(no_password=True)))
        for role_name in user.roles:
            await auth("UserGrantRole", rpc.AuthUserGrantRoleRequest(user=user.name, role=role_name))
    await auth("AuthEnable", rpc.AuthEnableRequest())
