"""The page's files: its own HTML, JS and CSS (``soilclay/ui/static``) and OpenLayers' UMD build from npm
(``web/node_modules/ol``), served by name from an allow-list, never by a path taken from the request."""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
#: ``web/`` of the source checkout (``npm install --prefix web`` puts OpenLayers there).
WEB = Path(__file__).resolve().parents[2] / "web"

MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".html": "text/html; charset=utf-8", ".map": "application/json"}


def files(web: Path = WEB) -> dict[str, Path]:
    """Served name -> file."""
    ol = web / "node_modules" / "ol"
    return {"ol.js": ol / "dist" / "ol.js", "ol.css": ol / "ol.css",
            "parcel_map.js": STATIC / "parcel_map.js", "parcel_map.css": STATIC / "parcel_map.css"}


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix, "application/octet-stream")


def page(base: str) -> str:
    """The page's HTML with ``base`` (the app's URL prefix, ending in ``/``) filled in."""
    return (STATIC / "index.html").read_text().replace("__BASE__", base)
