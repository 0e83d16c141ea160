"""Tests for the SVG path diagram."""

import xml.etree.ElementTree as ET

import pytest

from vpclink_runbooks.present.diagram import PALETTE, Hop, PathDiagram, Target, path_diagram

SVG = "{http://www.w3.org/2000/svg}"


def chain(**statuses):
    hops = [
        Hop("domain", "Custom domain", "api.example.com/orders", "base path orders"),
        Hop("stage", "REST API stage", "orders-api (a1b2c3) / prod", "vpcLinkId=abc123"),
        Hop("integration", "Integration", "ANY /{proxy+} HTTP_PROXY"),
        Hop("vpc_link", "VPC link", "orders-link (abc123)", "AVAILABLE"),
        Hop("nlb", "Load balancer", "orders-nlb", "internal, active"),
        Hop("listener", "Listener", "TCP :10000", "-> tg orders-tg"),
        Hop("target_group", "Target group", "orders-tg", "TCP :10000"),
        Hop("targets", "Target health", "1/2 healthy"),
        Hop("security_group", "Security group", "sg-0123456789abcdef0"),
        Hop("task_definition", "Task definition", "orders:7"),
        Hop("service", "ECS service", "orders"),
    ]
    for hop in hops:
        hop.status = statuses.get(hop.id, "pass")
    return hops


TARGETS = [
    Target("eu-west-2a", "i-0aaaaaaaaaaaaaaaa", "10.0.1.10", 10000, 8080, "pass", "healthy"),
    Target("eu-west-2b", "i-0bbbbbbbbbbbbbbbb", "10.0.2.11", 10000, 8080, "fail", "Target.NotInUse"),
    Target("eu-west-2c", "i-0cccccccccccccccc", "10.0.3.12", 10001, 7777, "planned"),
]


def text_of(svg: str) -> str:
    root = ET.fromstring(svg)
    return "\n".join("".join(element.itertext()) for element in root.iter(f"{SVG}text"))


def squash(text: str) -> str:
    """Drop whitespace: wrapped labels are split over several <text> lines."""
    return "".join(text.split())


def group(svg: str, hop_id: str) -> ET.Element:
    root = ET.fromstring(svg)
    found = [g for g in root.iter(f"{SVG}g") if g.get("data-hop") == hop_id]
    assert len(found) == 1, hop_id
    return found[0]


def test_every_hop_and_target_is_drawn():
    diagram = path_diagram(chain(), TARGETS, title="orders @ dev")
    drawn = text_of(diagram.svg)
    for hop in chain():
        assert hop.title in drawn
        assert squash(hop.label) in squash(drawn)
    for target in TARGETS:
        assert target.instance_id in drawn
        assert target.private_ip in drawn
        assert target.az in drawn
    assert ":10000 -> :8080" in drawn
    assert ":10001 -> :7777" in drawn
    assert "orders @ dev" in drawn


def test_output_is_valid_svg_and_renders_everywhere():
    diagram = path_diagram(chain(), TARGETS)
    root = ET.fromstring(diagram.svg)
    assert root.tag == f"{SVG}svg"
    assert diagram._repr_svg_() == diagram.svg == str(diagram)
    html = diagram._repr_html_()
    assert html.startswith("<div") and diagram.svg in html
    # No scripts, no external references of any kind.
    assert "<script" not in diagram.svg
    assert "href" not in diagram.svg
    assert "@import" not in diagram.svg and "url(" not in diagram.svg


def test_status_colours_differ():
    fills = {status: palette[0] for status, palette in PALETTE.items()}
    assert len(set(fills.values())) == len(fills)
    statuses = {"domain": "pass", "stage": "fail", "integration": "warn", "vpc_link": "skip",
                "nlb": "planned", "listener": "unknown"}
    svg = path_diagram(chain(**statuses), []).svg
    for hop_id, status in statuses.items():
        rect_fills = {rect.get("fill") for rect in group(svg, hop_id).iter(f"{SVG}rect")}
        assert PALETTE[status][0] in rect_fills, (hop_id, status)


def test_highlight_marks_only_the_given_hop():
    svg = path_diagram(chain(targets="fail"), TARGETS, highlight="targets").svg
    marked = group(svg, "targets")
    assert "first broken hop" in "".join(marked.itertext())
    assert any(rect.get("class") == "highlight" for rect in marked.iter(f"{SVG}rect"))
    others = [hop.id for hop in chain() if hop.id != "targets"]
    for hop_id in others:
        assert "first broken hop" not in "".join(group(svg, hop_id).itertext())
    unmarked = path_diagram(chain(), TARGETS).svg
    assert "first broken hop" not in unmarked


def test_highlight_of_a_hop_not_drawn_is_still_stated():
    svg = path_diagram(chain()[:3], [], highlight="service").svg
    assert "first broken hop: service" in text_of(svg)


def test_text_is_escaped():
    hops = [Hop("domain", "Custom <domain>", 'a<b>&c"d\'', "x & y < z", "fail")]
    targets = [Target("eu-west-2a <&>", "i-<&>", "10.0.0.1", 1, 2, "pass", "<note>")]
    diagram = path_diagram(hops, targets, title="<script>alert(1)</script>", highlight="domain")
    root = ET.fromstring(diagram.svg)  # would raise on unescaped text
    assert "<script" not in diagram.svg
    assert "&lt;script&gt;" in diagram.svg
    drawn = text_of(diagram.svg)
    assert "a<b>&c\"d'" in drawn
    assert "i-<&>" in drawn
    assert root.get("aria-label") == "<script>alert(1)</script>"


def test_control_characters_do_not_break_xml():
    diagram = path_diagram([Hop("nlb", "NLB", "bad\x00name\x1b")], [])
    ET.fromstring(diagram.svg)
    assert "badname" in text_of(diagram.svg)


def test_output_is_deterministic():
    first = path_diagram(chain(nlb="fail"), TARGETS, title="t", highlight="nlb")
    second = path_diagram(chain(nlb="fail"), TARGETS, title="t", highlight="nlb")
    assert first.svg == second.svg
    assert repr(first) == repr(second)


def test_missing_hops_are_not_drawn_and_empty_input_works():
    svg = path_diagram(chain()[:2], []).svg
    drawn = text_of(svg)
    assert "Custom domain" in drawn and "Load balancer" not in drawn
    assert "Instances behind" not in drawn
    ET.fromstring(path_diagram([], []).svg)
    only_targets = path_diagram([], TARGETS).svg
    assert "i-0bbbbbbbbbbbbbbbb" in text_of(only_targets)


def test_width_fits_a_notebook_and_long_chains_wrap():
    root = ET.fromstring(path_diagram(chain(), TARGETS).svg)
    assert int(root.get("width")) <= 900
    boxes = [g for g in root.iter(f"{SVG}g") if g.get("data-hop")]
    rows = {float(next(g.iter(f"{SVG}rect")).get("y")) for g in boxes}
    assert len(rows) >= 2


def test_long_labels_are_cut_but_kept_in_the_tooltip():
    long_label = (
        "arn:aws:elasticloadbalancing:eu-west-2:123456789012:loadbalancer/net/orders-nlb/50dc6c495c0c9188"
    )
    svg = path_diagram([Hop("nlb", "NLB", long_label)], []).svg
    assert "…" in text_of(svg)
    assert long_label in "".join(group(svg, "nlb").find(f"{SVG}title").itertext())


def test_text_form_reads_without_a_renderer():
    text = repr(path_diagram(chain(listener="fail"), TARGETS, title="orders", highlight="listener"))
    assert "[FAIL] Listener: TCP :10000" in text
    assert "first broken hop" in text
    assert "i-0cccccccccccccccc 10.0.3.12 :10001 -> :7777" in text


def test_save_writes_svg_and_html(tmp_path):
    diagram = path_diagram(chain(), TARGETS)
    svg_path = diagram.save(tmp_path / "path.svg")
    ET.parse(svg_path)
    html_path = diagram.save(tmp_path / "path.html")
    assert diagram.svg in html_path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "hops, targets, message",
    [
        ([Hop("load_balancer", "NLB", "x")], [], "Hop id 'load_balancer'"),
        ([Hop("nlb", "NLB", "x", status="broken")], [], "status 'broken'"),
        ([], [Target("eu-west-2a", "i-1", status="healthy")], "status 'healthy'"),
    ],
)
def test_bad_input_names_the_field(hops, targets, message):
    with pytest.raises(ValueError, match=message):
        path_diagram(hops, targets)


def test_status_is_case_insensitive_and_highlight_must_be_a_hop_id():
    assert isinstance(path_diagram([Hop("nlb", "NLB", "x", status="PASS")], []), PathDiagram)
    with pytest.raises(ValueError, match="highlight"):
        path_diagram([], [], highlight="load_balancer")


def test_check_hop_names_are_accepted_and_errors_join_the_runbook_hierarchy():
    from vpclink_runbooks.errors import RunbookError
    from vpclink_runbooks.present.diagram import DiagramInputError

    svg = path_diagram([Hop("mapping", "Custom domain", "api.example.com/orders", status="fail")], [],
                       highlight="mapping").svg
    assert "first broken hop" in "".join(group(svg, "mapping").itertext())
    assert issubclass(DiagramInputError, RunbookError) and issubclass(DiagramInputError, ValueError)
