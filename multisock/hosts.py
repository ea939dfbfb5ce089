"""An /etc/hosts-style name table for a virtual host (``--hosts FILE``)."""

from __future__ import annotations

import _socket

from multisock.stack import addresses as A


class HostsTable:
    def __init__(self) -> None:
        self._entries: list[tuple[str, str]] = []  # (lower-cased name, address text), file order

    @classmethod
    def parse(cls, text: str) -> HostsTable:
        table = cls()
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            try:
                A.pack(fields[0])
            except OSError:
                continue  # not an address: ignored, like glibc
            for name in fields[1:]:
                table.add(name, fields[0])
        return table

    @classmethod
    def from_file(cls, path: str) -> HostsTable:
        with open(path, encoding="utf-8") as f:
            return cls.parse(f.read())

    def add(self, name: str, address: str) -> None:
        self._entries.append((name.lower().rstrip("."), address))

    def lookup(self, name: str, family: int) -> list[str]:
        key = name.lower().rstrip(".")
        out = []
        for entry, address in self._entries:
            if entry != key:
                continue
            fam = A.family_of(A.pack(address))
            if family in (_socket.AF_UNSPEC, fam) and address not in out:
                out.append(address)
        return out

    def reverse(self, address: str) -> list[str]:
        packed = A.pack(address)
        return [name for name, addr in self._entries if A.pack(addr) == packed]
