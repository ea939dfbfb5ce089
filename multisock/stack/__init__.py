"""Sans-IO protocol machinery: IP, routing, fragments, ICMP, UDP, TCP."""
