"""Password hashing with argon2id, off the event loop in a bounded thread pool."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.kit.config import env_int

T = TypeVar("T")


class Passwords:
    """argon2id with OWASP's minimum parameters (19 MiB, t=2, p=1) rather than argon2-cffi's 64 MiB default: the
    whole lab must fit in well under 1 GB, and HASH_WORKERS bounds how many hashes run at once."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, workers: int) -> None:
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="argon2")
        # Login hashes a password even for an unknown email, so timing does not tell whether an email exists.
        self.dummy_hash = ""

    @classmethod
    def from_env(cls) -> Passwords:
        return cls(time_cost=env_int("ARGON2_TIME_COST", 2), memory_kib=env_int("ARGON2_MEMORY_KIB", 19456),
                   parallelism=env_int("ARGON2_PARALLELISM", 1), workers=env_int("HASH_WORKERS", 2))

    async def lifetime(self, _: object = None) -> AsyncGenerator[None, None]:
        self.dummy_hash = await self.hash(uuid.uuid4().hex)
        yield
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _in_executor(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def hash(self, password: str) -> str:
        return await self._in_executor(self.hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self.hasher.verify(password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await self._in_executor(check)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)
