"""Which network destinations outbound connectors may reach (the SSRF policy).

A workflow author chooses the URLs a connector calls, so without a policy any tenant could
make our workers fetch ``http://169.254.169.254/`` (cloud credentials), ``http://10.0.0.5/``
(an internal admin panel) or ``http://127.0.0.1:6379/`` (our own Redis). :class:`NetworkPolicy`
refuses every address that is not publicly routable (private, loopback, link-local,
multicast, reserved, unspecified, shared/CGNAT, IPv4 embedded in IPv6) unless the tenant's
allowlist names the host, the address or a network containing it.

DNS rebinding: checking a name and then letting the HTTP client resolve it again would let
an attacker's DNS server answer "public" to the check and "private" to the connection.
So the check and the connection share one resolution: :mod:`connectors.transport` resolves
the host once inside the HTTP client's network backend, checks every address, and opens
the TCP connection to a checked IP literal, while TLS (SNI, certificate verification) and
the ``Host`` header keep the name from the URL. Every redirect opens its connection
through the same backend, so redirect targets are checked the same way.
:meth:`NetworkPolicy.check_url` is the standalone check for code that does not use that
transport (it resolves, checks and returns the addresses it checked: connect to those, not
to the name).

Plain Python: no Django, no HTTP client.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from connectors.errors import PermanentError, RetryableError

__all__ = [
	"ALLOWED_SCHEMES",
	"IPAddress",
	"NetworkPolicy",
	"address_category",
	"addresses_from_addrinfo",
	"host_not_resolved",
	"parse_ip",
	"resolve",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
"""URL schemes outbound connectors may use."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


def parse_ip(host: str) -> IPAddress | None:
	"""The IP address ``host`` spells literally (``[::1]`` included), or None for a name."""
	try:
		return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
	except ValueError:
		return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
	"""The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64) and how."""
	if address.ipv4_mapped is not None:
		return address.ipv4_mapped, "IPv4-mapped"
	if address.sixtofour is not None:
		return address.sixtofour, "6to4"
	if address.teredo is not None:
		return address.teredo[1], "Teredo"
	if address in _NAT64:
		return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
	return None


def address_category(address: IPAddress) -> str | None:
	"""Why ``address`` is not a public destination, or None when it is.

	Args:
		address: An IPv4 or IPv6 address.

	Returns:
		``"loopback"``, ``"private"``, ``"link-local"``, ``"multicast"``, ``"reserved"``,
		``"unspecified"``, ``"site-local"`` or ``"non-public"`` (shared, documentation and
		other special-purpose ranges); for an IPv6 address carrying an IPv4 address, the
		IPv4 address's category with how it is embedded (``"loopback (IPv4-mapped)"``).
	"""
	if isinstance(address, ipaddress.IPv6Address):
		embedded = _embedded_ipv4(address)
		if embedded is not None:
			inner, how = embedded
			category = address_category(inner)
			if category is not None:
				return f"{category} ({how})"
			if how == "IPv4-mapped":
				# ::ffff:a.b.c.d is a.b.c.d spelled for an IPv6 socket: judge it as that.
				return None
		if address.is_site_local:
			return "site-local"
	# Order matters only for the message: 169.254.169.254 is private too, but "link-local"
	# is what tells an operator it is the metadata service.
	checks = (
		("unspecified", address.is_unspecified),
		("loopback", address.is_loopback),
		("link-local", address.is_link_local),
		("multicast", address.is_multicast),
		("private", address.is_private),
		("reserved", address.is_reserved),
		("non-public", not address.is_global),
	)
	return next((name for name, hit in checks if hit), None)


def addresses_from_addrinfo(infos: Iterable[tuple[Any, ...]]) -> tuple[IPAddress, ...]:
	"""The distinct IP addresses of ``getaddrinfo`` results, in the resolver's order."""
	seen: dict[IPAddress, None] = {}
	for info in infos:
		sockaddr = info[4]
		# An IPv6 link-local answer carries a zone (fe80::1%eth0); the zone does not change
		# the category, and ip_address() accepts it.
		seen.setdefault(ipaddress.ip_address(sockaddr[0]), None)
	return tuple(seen)


def _normalise_host(host: str) -> str:
	return host.strip().lower().removesuffix(".")


def _article(word: str) -> str:
	return "an" if word[:1] in "aeiou" else "a"


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
	"""Where outbound connectors may connect.

	Args:
		allow_private: Allow every address, public or not (a single-user install on a
			private network). Schemes are still restricted to http and https.
		allowlist: Exceptions to the refusal of non-public addresses, each one of: a host
			name (``intranet.example.com``), a wildcard for its subdomains
			(``*.corp.example.com``), an IP address (``10.0.0.5``, ``::1``) or a network in
			CIDR notation (``10.0.0.0/8``, ``fd00::/8``). A listed name allows whatever it
			resolves to; a listed address or network allows connections to it whichever
			name led there.

	Raises:
		ValueError: An allowlist entry is none of those.
	"""

	allow_private: bool = False
	allowlist: tuple[str, ...] = ()
	_hosts: frozenset[str] = field(init=False, repr=False, compare=False)
	_suffixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
	_networks: tuple[_Network, ...] = field(init=False, repr=False, compare=False)

	def __post_init__(self) -> None:
		hosts: set[str] = set()
		suffixes: list[str] = []
		networks: list[_Network] = []
		for raw in self.allowlist:
			entry = _normalise_host(raw) if isinstance(raw, str) else ""
			literal = parse_ip(entry)
			if literal is not None:
				networks.append(ipaddress.ip_network(literal))
			elif "/" in entry:
				try:
					networks.append(ipaddress.ip_network(entry, strict=False))
				except ValueError:
					raise ValueError(f"allowlist entry {raw!r} is not a valid CIDR network") from None
			elif entry.startswith("*.") and _is_host_name(entry[2:]):
				suffixes.append(entry[1:])
			elif _is_host_name(entry):
				hosts.add(entry)
			else:
				raise ValueError(
					f"allowlist entry {raw!r} is not a host name, *.wildcard, IP address or CIDR network"
				)
		object.__setattr__(self, "allowlist", tuple(self.allowlist))
		object.__setattr__(self, "_hosts", frozenset(hosts))
		object.__setattr__(self, "_suffixes", tuple(suffixes))
		object.__setattr__(self, "_networks", tuple(networks))

	def host_allowed(self, host: str) -> bool:
		"""Whether the allowlist names ``host`` (exactly or by a ``*.`` wildcard)."""
		name = _normalise_host(host)
		return name in self._hosts or name.endswith(self._suffixes)

	def address_allowed(self, address: IPAddress) -> bool:
		"""Whether ``address`` may be reached: public, or inside an allowlisted network."""
		if self.allow_private or address_category(address) is None:
			return True
		candidates: list[IPAddress] = [address]
		if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
			candidates.append(address.ipv4_mapped)
		return any(
			candidate.version == network.version and candidate in network
			for candidate in candidates
			for network in self._networks
		)

	def check_scheme(self, url: str) -> None:
		"""Refuse any URL that is not http or https.

		Raises:
			PermanentError: ``code="scheme_not_allowed"``.
		"""
		scheme = urlsplit(url).scheme.lower()
		if scheme not in ALLOWED_SCHEMES:
			shown = f"{scheme}://" if scheme else "a URL without a scheme"
			raise PermanentError(
				f"refused to fetch {shown}: only http:// and https:// URLs are allowed",
				code="scheme_not_allowed",
				details={"scheme": scheme},
			)

	def check_addresses(self, host: str, addresses: Sequence[IPAddress]) -> None:
		"""Refuse ``host`` unless every address it resolved to may be reached.

		One refused address refuses the host: a name that resolves to both a public and a
		private address is either misconfigured or an attack.

		Args:
			host: The host name (or literal) from the URL.
			addresses: What it resolved to.

		Raises:
			PermanentError: ``code="address_not_allowed"``, naming the address, why it is
				refused and what to add to the tenant's allowlist.
		"""
		if self.allow_private or self.host_allowed(host):
			return
		for address in addresses:
			if not self.address_allowed(address):
				raise _refusal(host, address, address_category(address) or "non-public")

	def check_url(self, url: str) -> tuple[IPAddress, ...]:
		"""Check a URL before connecting to it, resolving its host with ``getaddrinfo``.

		Blocks while resolving. HTTP clients should use :mod:`connectors.transport`
		instead, which does the same check at connection time with no second lookup.

		Args:
			url: An absolute http or https URL.

		Returns:
			Every address the host resolved to, all checked. Connect to one of these rather
			than resolving the name again (see the module docstring on DNS rebinding).

		Raises:
			PermanentError: The scheme is not http(s) (``scheme_not_allowed``), the URL has
				no host (``invalid_url``), or an address is refused (``address_not_allowed``).
			RetryableError: The host name could not be resolved (``host_not_resolved``).
		"""
		self.check_scheme(url)
		parts = urlsplit(url)
		try:
			host, port = parts.hostname, parts.port
		except ValueError as exc:
			raise PermanentError(f"invalid URL {url!r}: {exc}", code="invalid_url") from None
		if not host:
			raise PermanentError(f"invalid URL {url!r}: it names no host", code="invalid_url")
		addresses = resolve(host, port or _DEFAULT_PORTS[parts.scheme.lower()])
		self.check_addresses(host, addresses)
		return addresses


def _is_host_name(name: str) -> bool:
	return bool(name) and set(name) <= _HOST_CHARS and all(name.split("."))


def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
	"""Resolve ``host`` to its addresses (no lookup for an IP literal). Blocks.

	Raises:
		RetryableError: ``code="host_not_resolved"``; DNS failures are often temporary.
	"""
	literal = parse_ip(host)
	if literal is not None:
		return (literal,)
	try:
		infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
	except (OSError, UnicodeError) as exc:
		raise host_not_resolved(host, exc) from None
	return addresses_from_addrinfo(infos)


def host_not_resolved(host: str, exc: BaseException) -> RetryableError:
	"""The error for a host name that did not resolve."""
	reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
	return RetryableError(
		f"could not resolve host {host!r}: {reason}",
		code="host_not_resolved",
		details={"host": host},
	)


def _refusal(host: str, address: IPAddress, category: str) -> PermanentError:
	mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
	# An IPv4-mapped address is an IPv4 address in disguise: name it and allow it as one.
	shown = f"::ffff:{mapped}" if mapped is not None else str(address)
	allowable = str(mapped or address)
	named = _normalise_host(host)
	is_literal = parse_ip(named) is not None
	target = shown if is_literal else f"{named} ({shown})"
	suggestions = [allowable] if is_literal else [named, allowable]
	how = " or ".join(f"'{entry}'" for entry in suggestions)
	return PermanentError(
		f"refused to connect to {target}: it is {_article(category)} {category} address, and outbound "
		"connections to private, loopback, link-local, multicast and reserved addresses are blocked "
		f"to protect internal services (SSRF). If this destination is intended, add {how} (or a CIDR "
		"network containing the address) to the tenant's network allowlist.",
		code="address_not_allowed",
		details={"host": named, "address": shown, "category": category, "allowlist_suggestions": suggestions},
	)
