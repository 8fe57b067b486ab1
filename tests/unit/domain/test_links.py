"""Edges of a Thing: its own links, and those TD links that name a Thing."""

from __future__ import annotations

from typing import Any

import pytest

from iotas.domain.links import edges, td_edge, td_rel, thing_of_href
from iotas.domain.things import Thing


def thing_edges(thing: Thing) -> list[tuple[str, str]]:
    return edges(thing.links, thing.description)


def test_own_links_then_td_links_each_once_in_order() -> None:
    thing = Thing(
        "acme:pump-1",
        "pump",
        links=[
            {"rel": "hosted-by", "target": "acme:gw-1"},
            {"rel": "part-of", "target": "acme:site"},
        ],
        description={
            "links": [
                {"rel": "hosted-by", "href": "acme:gw-1"},  # the same edge again
                {"rel": "controlledBy", "href": "https://h.example/things/acme:ctl"},
                {"href": "acme:manual"},
                {"rel": "service-doc", "href": "https://docs.example/pump.html"},
            ]
        },
    )
    assert thing_edges(thing) == [
        ("hosted-by", "acme:gw-1"),
        ("part-of", "acme:site"),
        ("controlledby", "acme:ctl"),
        ("link", "acme:manual"),
    ]


def test_a_thing_without_links_or_td_has_no_edges() -> None:
    assert thing_edges(Thing("acme:x", "n")) == []
    assert edges(None, None) == []
    assert edges([], {"title": "no links"}) == []


@pytest.mark.parametrize(
    ("href", "thing_id"),
    [
        ("acme:gw-1", "acme:gw-1"),
        ("acme:Gw_1.a", "acme:Gw_1.a"),
        ("https://iotas.example/api/v1/things/acme:gw-1", "acme:gw-1"),
        ("https://iotas.example/api/v1/things/acme%3Agw-1", "acme:gw-1"),
        ("http://dir.example:8080/tdd/things/acme:gw-1/", "acme:gw-1"),
        ("https://dir.example/things/acme:gw-1?format=td#top", "acme:gw-1"),
        ("coap://[::1]/things/acme:gw-1", "acme:gw-1"),
        ("/api/v1/things/acme:gw-1", "acme:gw-1"),
        ("things/acme:gw-1", "acme:gw-1"),
        ("https://a.example/things/x/things/acme:gw-1", "acme:gw-1"),
        # Not a Thing: no /things/<id> at the end of the path, or not a valid id there.
        ("https://iotas.example/api/v1/things/acme:gw-1/properties/on", None),
        ("https://iotas.example/api/v1/things/", None),
        ("https://iotas.example/api/v1/things", None),
        ("https://iotas.example/api/v1/things/gw-1", None),
        ("https://iotas.example/api/v1/things/ACME:gw-1", None),
        ("https://iotas.example/api/v1/stuff/acme:gw-1", None),
        ("https://iotas.example/?next=/things/acme:gw-1", None),
        ("urn:dev:ops:32473-lamp-1", None),
        ("acme:", None),
        ("", None),
        ("gw-1", None),
    ],
)
def test_which_hrefs_name_a_thing(href: str, thing_id: str | None) -> None:
    assert thing_of_href(href) == thing_id


@pytest.mark.parametrize(
    ("rel", "edge_rel"),
    [
        ("hosted-by", "hosted-by"),
        ("controlledBy", "controlledby"),
        ("ITEM", "item"),
        ("https://www.w3.org/2019/wot/td#controlledBy", "controlledby"),
        ("https://example.org/rels/powered-by", "powered-by"),
        ("https://example.org/rels/powered-by/", "powered-by"),
        ("a" * 64, "a" * 64),
        # Not a relation name after lowercasing: the link is skipped.
        ("proxy_to", None),
        ("über", None),
        ("with space", None),
        ("1st", None),
        ("", None),
        ("https://example.org/rels#", None),
        ("a" * 65, None),
        (None, None),
        (7, None),
    ],
)
def test_td_rels_keep_what_can_be_a_relation(rel: Any, edge_rel: str | None) -> None:
    assert td_rel(rel) == edge_rel
    edge = td_edge({"rel": rel, "href": "acme:t"})
    assert edge == (None if edge_rel is None else (edge_rel, "acme:t"))


def test_a_td_link_without_rel_is_a_plain_link() -> None:
    assert td_edge({"href": "acme:t", "type": "application/td+json"}) == ("link", "acme:t")
    assert td_edge({"href": "acme:t", "anchor": "#x"}) == ("link", "acme:t")


@pytest.mark.parametrize(
    "description",
    [
        {"links": "acme:t"},
        {"links": [None, 3, "acme:t", {"rel": "a"}, {"href": 5}, {"href": ["acme:t"]}]},
        ["links"],
        "links",
    ],
)
def test_malformed_td_links_give_no_edges(description: Any) -> None:
    assert edges([], description) == []


def test_malformed_own_links_give_no_edges() -> None:
    # Validated on write; stored rows read back by a migration are taken as they come.
    assert edges([{"rel": 1, "target": "acme:t"}, {"rel": "a"}, "x", None], None) == []
    assert edges({"rel": "a", "target": "acme:t"}, None) == []
