"""Wire formats: parse and build for every header the stack speaks.

One module per header. ``parse`` never raises anything but
:class:`~multisock.wire.errors.MalformedPacket`; ``build`` returns ``bytes``.
Transport checksums are filled by the IP layer (like checksum offload), so
transport ``build`` functions leave them zero unless documented otherwise.
"""

from multisock.wire.errors import MalformedPacket

__all__ = ["MalformedPacket"]
