"""A real headless Chromium tab on the web UI, as the browser tests drive it."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


class Page:
    """One browser tab on the UI that records console errors and requests to other hosts."""

    def __init__(self, browser, base_url: str, viewport=(960, 720), scale: float = 2,
                 touch: bool = False):
        width, height = viewport
        # Reduced motion turns the bars' width transition off, so what a test measures is
        # the final drawing, not a frame of the animation.
        self.context = browser.new_context(viewport={"width": width, "height": height},
                                           device_scale_factor=scale, reduced_motion="reduce",
                                           has_touch=touch, is_mobile=touch)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(m.text))
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on("request", lambda r: r.url.startswith(base_url)
                     or self.problems.append(f"request to another host: {r.url}"))
        self.page.goto(base_url + "/")

    def draw(self, strokes, steps: int = 10) -> None:
        """Draw with the mouse: real pointerdown, pointermove and pointerup events.

        steps: pointer moves between two points (more, for strokes given by a few points).
        """
        box = self.page.locator("#canvas").bounding_box()
        for points in strokes:
            xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
            self.page.mouse.move(*xy[0])
            self.page.mouse.down()
            for point in xy[1:]:
                self.page.mouse.move(*point, steps=steps)
            self.page.mouse.up()

    def draw_with_finger(self, strokes) -> None:
        """Draw with touch: real touchstart/touchmove/touchend, as a phone's screen sends them."""
        cdp = self.context.new_cdp_session(self.page)
        box = self.page.locator("#canvas").bounding_box()
        for points in strokes:
            xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
            path = [xy[0]] + [(a[0] + (b[0] - a[0]) * i / 10, a[1] + (b[1] - a[1]) * i / 10)
                              for a, b in zip(xy[:-1], xy[1:], strict=True) for i in range(1, 11)]
            for kind, (x, y) in [("touchStart", path[0])] + [("touchMove", p) for p in path[1:]]:
                cdp.send("Input.dispatchTouchEvent",
                         {"type": kind, "touchPoints": [{"x": x, "y": y}]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    def locator(self, selector: str):
        return self.page.locator(selector)
