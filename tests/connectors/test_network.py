"""The SSRF policy: which addresses are refused, how the allowlist opens them, what users are told."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.errors import PermanentError, RetryableError
from connectors.network import NetworkPolicy, address_category, parse_ip, resolve


@pytest.mark.parametrize(
	("address", "category"),
	[
		("127.0.0.1", "loopback"),
		("127.8.9.10", "loopback"),
		("10.0.0.1", "private"),
		("172.16.5.4", "private"),
		("192.168.1.1", "private"),
		("169.254.169.254", "link-local"),
		("0.0.0.0", "unspecified"),  # noqa: S104 - an address to classify, not one to bind
		("224.0.0.251", "multicast"),
		("100.64.0.1", "non-public"),
		("::1", "loopback"),
		("::", "unspecified"),
		("fe80::1", "link-local"),
		("fc00::1", "private"),
		("fd12:3456::1", "private"),
		("ff02::1", "multicast"),
		("fec0::1", "site-local"),
		("::ffff:127.0.0.1", "loopback (IPv4-mapped)"),
		("::ffff:10.0.0.1", "private (IPv4-mapped)"),
		("2002:7f00:1::", "loopback (6to4)"),
		("2002:a9fe:a9fe::", "link-local (6to4)"),
		("64:ff9b::a00:1", "private (NAT64)"),
		("2001:0:4136:e378:8000:63bf:3fff:fdd2", "private (Teredo)"),
		("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "private"),
		("::7f00:1", "reserved"),
		("8.8.8.8", None),
		("93.184.216.34", None),
		("::ffff:8.8.8.8", None),
		("2606:4700:4700::1111", None),
		("2002:808:808::", None),
	],
)
def test_addresses_are_classified(address: str, category: str | None) -> None:
	assert address_category(ipaddress.ip_address(address)) == category


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_and_its_mapped_ipv6_form_get_the_same_verdict(
	address: ipaddress.IPv4Address,
) -> None:
	mapped = ipaddress.IPv6Address(f"::ffff:{address}")
	policy = NetworkPolicy()

	assert policy.address_allowed(mapped) == policy.address_allowed(address)
	assert (address_category(mapped) is None) == (address_category(address) is None)


@given(st.ip_addresses(network="10.0.0.0/8") | st.ip_addresses(network="fc00::/7"))
def test_every_private_address_is_refused_and_allowlisting_its_network_allows_it(address: Any) -> None:
	network = "10.0.0.0/8" if address.version == 4 else "fc00::/7"

	assert not NetworkPolicy().address_allowed(address)
	assert NetworkPolicy(allowlist=(network,)).address_allowed(address)


@pytest.mark.parametrize(
	"url",
	[
		"http://127.0.0.1/",
		"http://10.0.0.1/",
		"http://169.254.169.254/latest/meta-data/iam/",
		"http://[::1]:8080/",
		"http://[::ffff:127.0.0.1]/",
		"https://[fe80::1]/",
		"http://0.0.0.0:6379/",
	],
)
def test_check_url_refuses_internal_addresses_without_traffic(
	url: str, no_outbound_traffic: list[Any]
) -> None:
	with pytest.raises(PermanentError) as caught:
		NetworkPolicy().check_url(url)

	assert caught.value.code == "address_not_allowed"
	assert "allowlist" in caught.value.message
	assert no_outbound_traffic == []


def test_the_refusal_names_the_address_and_what_to_allowlist() -> None:
	with pytest.raises(PermanentError) as caught:
		NetworkPolicy().check_url("http://localhost:8000/admin")

	error = caught.value
	assert error.message.startswith("refused to connect to localhost (127.0.0.1): it is a loopback address")
	assert (
		"add 'localhost' or '127.0.0.1' (or a CIDR network containing the address) to the tenant's network allowlist"
		in error.message
	)
	assert error.details == {
		"host": "localhost",
		"address": "127.0.0.1",
		"category": "loopback",
		"allowlist_suggestions": ["localhost", "127.0.0.1"],
	}


def test_a_mapped_address_is_named_and_allowed_as_ipv4() -> None:
	with pytest.raises(PermanentError) as caught:
		NetworkPolicy().check_url("http://[::ffff:169.254.169.254]/")

	assert caught.value.details["address"] == "::ffff:169.254.169.254"
	assert caught.value.details["allowlist_suggestions"] == ["169.254.169.254"]
	assert "an link" not in caught.value.message
	assert NetworkPolicy(allowlist=("169.254.169.254",)).check_url("http://[::ffff:169.254.169.254]/")


@pytest.mark.parametrize(
	"url", ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://example.com/", "//example.com/x"]
)
def test_only_http_and_https_are_allowed(url: str) -> None:
	with pytest.raises(PermanentError) as caught:
		NetworkPolicy(allow_private=True).check_url(url)

	assert caught.value.code == "scheme_not_allowed"
	assert "only http:// and https://" in caught.value.message


@pytest.mark.parametrize("url", ["http:///path", "http://example.com:99999/"])
def test_urls_without_a_usable_host_are_invalid(url: str) -> None:
	with pytest.raises(PermanentError) as caught:
		NetworkPolicy().check_url(url)

	assert caught.value.code == "invalid_url"


def test_public_literals_pass_and_return_the_checked_addresses() -> None:
	assert NetworkPolicy().check_url("https://93.184.216.34/") == (ipaddress.ip_address("93.184.216.34"),)


@pytest.mark.parametrize(
	("allowlist", "url"),
	[
		(("127.0.0.1",), "http://127.0.0.1:8000/"),
		(("127.0.0.0/8",), "http://127.0.0.2/"),
		(("localhost",), "http://LOCALHOST./"),
		(("::1",), "http://[::1]/"),
		(("[::1]",), "http://[::1]/"),
		(("*.svc.test",), "http://api.svc.test/"),
	],
)
def test_the_allowlist_opens_hosts_addresses_and_networks(
	allowlist: tuple[str, ...], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
	monkeypatch.setattr("socket.getaddrinfo", lambda *args, **kwargs: [(2, 1, 6, "", ("127.0.0.1", 80))])

	assert NetworkPolicy(allowlist=allowlist).check_url(url)


def test_a_wildcard_does_not_cover_its_bare_domain() -> None:
	policy = NetworkPolicy(allowlist=("*.svc.test",))

	assert policy.host_allowed("a.b.svc.test")
	assert not policy.host_allowed("svc.test")
	assert not policy.host_allowed("evilsvc.test")


def test_allow_private_allows_everything_but_other_schemes() -> None:
	policy = NetworkPolicy(allow_private=True)

	assert policy.check_url("http://10.0.0.1/") == (ipaddress.ip_address("10.0.0.1"),)
	assert policy.address_allowed(ipaddress.ip_address("169.254.169.254"))


@pytest.mark.parametrize("entry", ["", "10.0.0.0/33", "not a host", "*.", "a..b", "http://x"])
def test_malformed_allowlist_entries_are_rejected(entry: str) -> None:
	with pytest.raises(ValueError, match="allowlist entry"):
		NetworkPolicy(allowlist=(entry,))


def test_policies_compare_and_hash_by_their_settings() -> None:
	from_settings: Any = ["10.0.0.0/8"]  # a list, as JSON settings give it
	one = NetworkPolicy(allowlist=from_settings)

	assert one == NetworkPolicy(allowlist=("10.0.0.0/8",))
	assert hash(one) == hash(NetworkPolicy(allowlist=("10.0.0.0/8",)))


def test_resolve_skips_the_resolver_for_literals_and_reports_failures(
	monkeypatch: pytest.MonkeyPatch,
) -> None:
	def broken(*args: Any, **kwargs: Any) -> Any:
		raise OSError(-2, "Name or service not known")

	monkeypatch.setattr("socket.getaddrinfo", broken)

	assert resolve("[2001:db8::1]", 443) == (ipaddress.ip_address("2001:db8::1"),)
	with pytest.raises(RetryableError) as caught:
		resolve("example.invalid", 80)
	assert caught.value.code == "host_not_resolved"
	assert "Name or service not known" in caught.value.message


def test_resolve_deduplicates_answers_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
	answers = [
		(10, 1, 6, "", ("fe80::1%lo", 80, 0, 1)),
		(2, 1, 6, "", ("127.0.0.1", 80)),
		(2, 1, 6, "", ("127.0.0.1", 80)),
	]
	monkeypatch.setattr("socket.getaddrinfo", lambda *args, **kwargs: answers)

	assert [str(address) for address in resolve("dual.test", 80)] == ["fe80::1%lo", "127.0.0.1"]


def test_parse_ip_reads_literals_only() -> None:
	assert parse_ip("[::1]") == ipaddress.ip_address("::1")
	assert parse_ip("127.0.0.1") == ipaddress.ip_address("127.0.0.1")
	assert parse_ip("example.com") is None
	assert parse_ip("127.1") is None  # a resolver reads that as 127.0.0.1: it is resolved, then checked
