"""The socket facade's machinery: cores behind ``multisock.socket.socket``."""
