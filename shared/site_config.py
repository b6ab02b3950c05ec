"""Per-site configuration files: a network-wide default and each site's overrides on top.

The rules file (analytics), the matching file (intake) and any other per-site configuration
share one document shape, ``{"default": {...}, "sites": {"<site>": {...}}}``, and one way of
laying a site's overrides over the default: nested mappings merge key by key, anything else
replaces (and the keys a service names in ``replace`` replace whole, even when a mapping).
Validation of the merged result is the service's own (its Pydantic model names the field).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

DOCUMENT_SHAPE = '{"default": {...}, "sites": {"<site>": {...}}}'


def overlay(
    base: Mapping[str, Any], overrides: Mapping[str, Any], replace: Collection[str] = ()
) -> dict[str, Any]:
    """``base`` with ``overrides`` deep-merged on top."""
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping) and key not in replace:
            merged[key] = overlay(current, value, replace)
        else:
            merged[key] = value
    return merged


def site_document(data: Any) -> tuple[Mapping[str, Any], Mapping[str, Mapping[str, Any]]]:
    """The default's overrides and each site's, from a per-site configuration document;
    ``ValueError`` naming the expected shape when it is not one."""
    if not isinstance(data, dict) or not set(data) <= {"default", "sites"}:
        raise ValueError(f"expected {DOCUMENT_SHAPE}")
    default = data.get("default") or {}
    sites = data.get("sites") or {}
    if not isinstance(default, dict) or not isinstance(sites, dict):
        raise ValueError(f"expected {DOCUMENT_SHAPE}")
    return default, sites
