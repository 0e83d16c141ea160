"""What export works with: an Item to import, the Refs between them, a Discovery in progress, a Kind (one row
of the table), and the helpers every kind's body uses."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vpclink_runbooks.aws import elbv2 as aws_elbv2
from vpclink_runbooks.context import Context
from vpclink_runbooks.export.rendering import Ref

# ---- the table of resource kinds -----------------------------------------------------------------------

@dataclass
class Item:
    """One live resource to adopt: its Terraform type, label (address = type.label) and import id."""

    tf_type: str
    label: str
    import_id: str
    live: dict

    @property
    def address(self) -> str:
        return f"{self.tf_type}.{self.label}"


class Refs:
    """Terraform addresses of the exported resources, by (type, import id)."""

    def __init__(self, items: list[Item]):
        self._by_id = {(i.tf_type, i.import_id): i for i in items}

    def get(self, tf_type: str, import_id: str) -> Item | None:
        return self._by_id.get((tf_type, import_id))

    def of_type(self, tf_type: str) -> list[Item]:
        return [i for (t, _), i in self._by_id.items() if t == tf_type]

    def attr(self, tf_type: str, import_id: str, attribute: str, literal: Any = None) -> Any:
        """tf_type.label.attribute when that resource is exported, else the live literal value."""
        item = self.get(tf_type, import_id)
        if item is None:
            return import_id if literal is None else literal
        return Ref(f"{item.address}.{attribute}")


@dataclass
class Discovery:
    """What discovery has found so far (kinds run in table order) and why a kind found nothing."""

    ctx: Context
    found: dict[str, list[dict]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Kind:
    tf_type: str
    what: str                                         # for people: "NLB", "listener"
    discover: Callable[[Discovery], list[dict]]       # live records (read-only calls)
    import_id: Callable[[dict], str]                  # the AWS provider's documented import id
    label: Callable[[dict], str]                      # readable; made unique per type
    body: Callable[[dict, Refs], dict]                # the resource's arguments, from the live record


def slug(text: str) -> str:
    label = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "this"
    return label if label[0].isalpha() else f"r_{label}"


def _tags(tags: Any) -> dict[str, str]:
    """Tags as a sorted map, from any AWS shape ({k: v}, [{Key, Value}], [{key, value}])."""
    if isinstance(tags, list):
        tags = {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags}
    return dict(sorted((tags or {}).items()))


def _with_tags(body: dict, tags: Any) -> dict:
    tags = _tags(tags)
    return {**body, "tags": tags} if tags else body


def _compact(body: dict) -> dict:
    """Leave out arguments AWS reports as absent (None), so the provider's defaults apply as they did."""
    return {k: v for k, v in body.items() if v is not None}


def _elb_tags(ctx: Context, arns: list[str]) -> dict[str, list[dict]]:
    return aws_elbv2.tags(ctx.aws, arns)
