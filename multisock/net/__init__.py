"""The in-process virtual network: hosts, links, impairments, capture, driver."""
