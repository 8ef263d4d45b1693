"""Augmentations that `torchvision.transforms.v2` lacks, written as v2 transforms (boxes and masks follow the image).

`RandomRightAngleRotation` turns a sample by a multiple of 90 degrees exactly: pixels are moved, not resampled,
and a box stays the tight box of its object. (`v2.RandomRotation` at other angles can only return the box
around the turned box, up to 1.4 times too large at 45 degrees, which teaches a detector loose boxes.) With
`v2.RandomHorizontalFlip` it gives all eight right-angle views of a picture seen from above.

`RandomRotationTightBoxes` turns by any angle and keeps boxes tight when the objects' outlines are known (COCO
polygons): the box readers then give the outlines as `"outlines"` (`Outlines`: each vertex as a box of no size,
so every torchvision transform moves it exactly as it moves the boxes), and `BoxesFromOutlines` (added by
`create_transform`) makes each box the box of its turned outline. A sample without outlines (YOLO, Pascal VOC, COCO
without polygons, tiles) is turned by a right angle.

Importing this module needs torchvision (`pip install "torchbricks[vision]"`).
"""

from __future__ import annotations

from typing import Any

import torch

from torchbricks._extras import require
from torchbricks.errors import BrickError

v2 = require("torchvision.transforms.v2", "vision")
tv_tensors = require("torchvision.tv_tensors", "vision")

__all__ = [
    "BoxesFromOutlines",
    "Outlines",
    "RandomRightAngleRotation",
    "RandomRotationTightBoxes",
    "ResizeCentredMasks",
    "resize_mask_centred",
    "rotate_boxes_right_angle",
]


def resize_mask_centred(mask: torch.Tensor, size: tuple[int, int] | list[int]) -> torch.Tensor:
    """A mask [..., h, w] resized to `size` (height, width), each pixel taking the mask's pixel under its centre
    (torch's `nearest-exact`, in exact integer arithmetic); a `tv_tensors.Mask` stays one.

    torchvision resizes masks by `nearest`, which takes the pixel under each output pixel's top-left corner: shrunk
    by a factor s, a mask moves (s - 1) / 2 pixels of the original up and left of its image (whose antialiased
    resize centres each output pixel on the pixels it covers), and a model trained on it predicts masks shifted so.

    Example:
        >>> resize_mask_centred(torch.arange(8).reshape(1, 8), (1, 2)).tolist()  # the pixels under 2 and 6, not 0 and 4
        [[2, 6]]
    """
    height, width = int(size[0]), int(size[1])
    plain = mask.as_subclass(torch.Tensor)
    if tuple(plain.shape[-2:]) == (height, width):
        return mask
    rows = torch.div((2 * torch.arange(height) + 1) * plain.shape[-2], 2 * height, rounding_mode="floor")
    columns = torch.div((2 * torch.arange(width) + 1) * plain.shape[-1], 2 * width, rounding_mode="floor")
    resized = plain[..., rows[:, None], columns[None, :]]
    return tv_tensors.wrap(resized, like=mask) if isinstance(mask, tv_tensors.TVTensor) else resized


class ResizeCentredMasks(v2.Resize):  # type: ignore[name-defined]
    """`v2.Resize` whose masks take the pixel under each output pixel's centre (`resize_mask_centred`), as the
    image's antialiased resize does, instead of torchvision's top-left one: the first step of `create_transform`.

    Example:
        >>> from torchvision import tv_tensors
        >>> ResizeCentredMasks((1, 2))(tv_tensors.Mask(torch.arange(8).reshape(1, 8))).tolist()
        [[2, 6]]
    """

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            return resize_mask_centred(inpt, self.size)
        return super().transform(inpt, params)


def rotate_boxes_right_angle(boxes: torch.Tensor, turns: int, canvas_size: tuple[int, int]) -> torch.Tensor:
    """XYXY boxes on a canvas of `(height, width)` turned like `torch.rot90(image, turns, dims=(-2, -1))`.

    One turn (counter-clockwise on the screen) moves the point (x, y) to (y, width - x).

    Example:
        >>> rotate_boxes_right_angle(torch.tensor([[10.0, 20.0, 30.0, 25.0]]), 1, (40, 100))
        tensor([[20., 70., 25., 90.]])
    """
    height, width = canvas_size
    for _ in range(turns % 4):
        x_min, y_min, x_max, y_max = boxes.unbind(-1)
        boxes = torch.stack([y_min, width - x_max, y_max, width - x_min], dim=-1)
        height, width = width, height
    return boxes


class RandomRightAngleRotation(v2.Transform):  # type: ignore[name-defined]
    """Turns the image, its masks and its boxes by 0, 90, 180 or 270 degrees, each equally likely.

    A turn by 90 or 270 degrees swaps the height and width, so a sample that is not square is turned by 0 or 180
    degrees only (a batch keeps one size).

    Args:
        p: Probability of turning the sample at all (by 90, 180 or 270 degrees, each equally likely).

    Example:
        >>> from torchvision import tv_tensors
        >>> image = tv_tensors.Image(torch.arange(4).reshape(1, 2, 2))
        >>> RandomRightAngleRotation().transform(image, {"turns": 1}).tolist()  # one counter-clockwise turn
        [[[1, 3], [0, 2]]]
    """

    def __init__(self, p: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise BrickError(f"RandomRightAngleRotation: p must be in [0, 1], got {p!r}.")
        self.p = p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        if torch.rand(()) >= self.p:
            return {"turns": 0}
        choices = (1, 2, 3) if height == width else (2,)
        return {"turns": choices[int(torch.randint(len(choices), ()))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        turns = params["turns"]
        if turns == 0:
            return inpt
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            xyxy = v2.functional.convert_bounding_box_format(inpt, new_format=tv_tensors.BoundingBoxFormat.XYXY)
            turned = rotate_boxes_right_angle(xyxy.as_subclass(torch.Tensor), turns, tuple(inpt.canvas_size))
            height, width = inpt.canvas_size
            canvas = (height, width) if turns == 2 else (width, height)
            result = tv_tensors.wrap(turned, like=inpt, format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=canvas)
            return v2.functional.convert_bounding_box_format(result, new_format=inpt.format)
        if isinstance(inpt, torch.Tensor):  # images, masks, videos: [..., H, W]
            turned = torch.rot90(inpt, turns, dims=(-2, -1))
            return tv_tensors.wrap(turned, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else turned
        return v2.functional.rotate(inpt, 90.0 * turns, expand=True)  # PIL images: a right-angle turn is exact


class Outlines(tv_tensors.BoundingBoxes):  # type: ignore[name-defined]
    """The outlines of a sample's N objects, each P polygons (parts) of K vertices: XYXY boxes of no size
    [N * P * K, 4], object by object, part by part (`parts_per_object` is P, `vertices_per_part` K).

    Being boxes, the vertices are moved by every torchvision transform exactly as the sample's boxes are (flips,
    turns, resizing, affine maps); torchvision's `KeyPoints` follow another convention for flips (x -> width - 1 - x,
    boxes x -> width - x). They are not clamped to the image (`clamping_mode=None`): a vertex a turn moves out of the
    image keeps its place, so that `BoxesFromOutlines` can cut each polygon at the image's border. Made by
    `from_points`, read back by `BoxesFromOutlines`.
    """

    parts_per_object: int
    vertices_per_part: int

    @classmethod
    def from_points(cls, points: torch.Tensor, canvas_size: tuple[int, int]) -> Outlines:
        """Outlines of points float [N, K, 2] (one polygon per object) or [N, P, K, 2] (P polygons per object, each
        closed by the edge from its last vertex to its first) (x, y) on a canvas of `(height, width)`."""
        flat = points.reshape(-1, 2)
        outlines = cls(torch.cat([flat, flat], dim=-1), format="XYXY", canvas_size=canvas_size, clamping_mode=None)
        outlines.parts_per_object = int(points.shape[1]) if points.dim() == 4 else 1
        outlines.vertices_per_part = int(points.shape[-2])
        return outlines

    @classmethod
    def wrap(cls, tensor: torch.Tensor, like: Outlines, **kwargs: Any) -> Outlines:
        """What torchvision's transforms return: the moved vertices, with the layout of `like`."""
        outlines = super().wrap(tensor, like, **kwargs)
        outlines.parts_per_object = like.parts_per_object
        outlines.vertices_per_part = like.vertices_per_part
        return outlines


class RandomRotationTightBoxes(v2.Transform):  # type: ignore[name-defined]
    """Turns the image, its masks and its objects' outlines by an angle drawn uniformly from `[-degrees, degrees]`;
    each box becomes the box of its turned outline (`BoxesFromOutlines`), so boxes stay tight at any angle.

    A sample with boxes but no outlines is turned by a right angle instead (`RandomRightAngleRotation`): its boxes
    stay tight too. The box readers give the outlines (`Outlines`) when the transform asks for them and every object
    of the image has COCO polygons; an image with a box-only object (YOLO, Pascal VOC) or an RLE mask gets none. The
    corners the turn brings in are black, and background (0) in the masks; the image keeps its size.

    Args:
        degrees: The largest angle either way, in degrees (180: any angle).
        p: Probability of turning the sample at all.

    Example:
        >>> outline = Outlines.from_points(torch.tensor([[[40.0, 50.0], [60.0, 50.0]]]), (100, 100))
        >>> turned = RandomRotationTightBoxes().transform(outline, {"angle": 90.0, "turns": 0})
        >>> [[round(value) for value in vertex[:2]] for vertex in turned.tolist()]  # counter-clockwise about the centre
        [[50, 60], [50, 40]]
    """

    uses_outlines = True
    """Asks the box readers for the objects' outlines (`BoxDataset`) and `create_transform` for `BoxesFromOutlines`."""

    def __init__(self, degrees: float = 180.0, p: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= degrees <= 180.0:
            raise BrickError(f"RandomRotationTightBoxes: degrees must be in [0, 180], got {degrees!r}.")
        if not 0.0 <= p <= 1.0:
            raise BrickError(f"RandomRotationTightBoxes: p must be in [0, 1], got {p!r}.")
        self.degrees = float(degrees)
        self.p = p
        self._right_angles = RandomRightAngleRotation()

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        if torch.rand(()) >= self.p:
            return {"angle": 0.0, "turns": 0}
        has_boxes = any(isinstance(inpt, tv_tensors.BoundingBoxes) and not isinstance(inpt, Outlines) for inpt in flat_inputs)
        has_outlines = any(isinstance(inpt, Outlines) for inpt in flat_inputs)
        if has_boxes and not has_outlines:
            return {"angle": 0.0, "turns": self._right_angles.make_params(flat_inputs)["turns"]}
        angle = float(torch.empty(()).uniform_(-self.degrees, self.degrees))
        return {"angle": angle, "turns": 0}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["turns"]:
            return self._right_angles.transform(inpt, {"turns": params["turns"]})
        if params["angle"] == 0.0 or (isinstance(inpt, tv_tensors.BoundingBoxes) and not isinstance(inpt, Outlines)):
            return inpt  # the boxes are made again from the turned outlines
        # images bilinear; masks always nearest (torchvision's rule); outlines exactly
        return v2.functional.rotate(inpt, params["angle"], interpolation=v2.InterpolationMode.BILINEAR)


class BoxesFromOutlines:
    """Makes each box the box of the part of its object's outline (`"outlines"`: `Outlines`) inside the image, and
    drops the outlines; a sample without them is returned as it is. `create_transform` puts it after the
    augmentations when one of them has `uses_outlines`.

    Each polygon is cut at the image's border (not its vertices moved onto it, which would give the box around the
    whole turned object, cut to the image: up to twice as large as what shows of an object a turn moves half out of
    the image, and a box on the black corner for an object that no longer shows). An object of which nothing is left
    gets an empty box, which `SanitizeBoundingBoxes` drops with its label.

    Example:
        >>> from torchvision import tv_tensors
        >>> sample = {
        ...     "boxes": tv_tensors.BoundingBoxes([[0, 0, 1, 1]], format="XYXY", canvas_size=(50, 50)),
        ...     "outlines": Outlines.from_points(torch.tensor([[[10.0, 5.0], [90.0, 45.0], [90.0, 5.0]]]), (50, 50)),
        ... }
        >>> BoxesFromOutlines()(sample)["boxes"].tolist(), "outlines" in sample  # cut where its edges leave the image
        ([[10.0, 5.0, 50.0, 25.0]], False)
    """

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(sample, dict) or "outlines" not in sample:
            return sample
        outlines = sample.pop("outlines")
        boxes = sample["boxes"]
        height, width = outlines.canvas_size
        vertices = outlines.as_subclass(torch.Tensor).float()[:, :2]
        count = boxes.shape[0]
        per_part = getattr(outlines, "vertices_per_part", None) or max(1, len(vertices) // max(count, 1))
        per_object = getattr(outlines, "parts_per_object", None) or max(1, len(vertices) // max(count * per_part, 1))
        if len(vertices) != count * per_object * per_part:
            raise BrickError(
                f"BoxesFromOutlines: {len(vertices)} outline vertices for {count} boxes; a transform before it "
                "dropped boxes without their outlines (SanitizeBoundingBoxes belongs after it)."
            )
        if count:
            polygons = vertices.reshape(count, -1, per_part, 2)
            x, y = polygons[..., 0].flatten(1), polygons[..., 1].flatten(1)
            tight = torch.stack([x.amin(1), y.amin(1), x.amax(1), y.amax(1)], dim=-1)  # objects wholly inside
            crossing = (tight[:, 0] < 0) | (tight[:, 1] < 0) | (tight[:, 2] > width) | (tight[:, 3] > height)
            if crossing.any():
                tight[crossing] = _clipped_boxes(polygons[crossing], float(width), float(height))
        else:
            tight = vertices.new_zeros((0, 4))
        result = tv_tensors.BoundingBoxes(tight, format="XYXY", canvas_size=(height, width))
        sample["boxes"] = v2.functional.convert_bounding_box_format(result, new_format=boxes.format)
        return sample

    def __repr__(self) -> str:
        return "BoxesFromOutlines()"


def _clipped_boxes(polygons: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """XYXY box of the part inside the image `[0, width] x [0, height]` of each object's polygons [N, P, K, 2]
    (each closed); zeros for an object with nothing inside.

    The extreme points of a polygon cut to a rectangle are its vertices inside the rectangle, the points where its
    edges cross the rectangle's border and the rectangle's corners inside it: the box is theirs.
    """
    start = polygons
    end = torch.roll(polygons, -1, dims=2)  # the edge from each vertex to the next, the last to the first
    slack = 1e-4 * max(width, height, 1.0)
    candidates = [start]
    inside = [_in_rectangle(start, width, height, slack)]
    for axis, limit in ((0, 0.0), (0, width), (1, 0.0), (1, height)):  # the four border lines
        a, b = start[..., axis], end[..., axis]
        crosses = ((a - limit) * (b - limit) <= 0) & (a != b)
        fraction = ((limit - a) / torch.where(a != b, b - a, torch.ones_like(a))).clamp(0, 1)
        point = start + fraction[..., None] * (end - start)
        point[..., axis] = limit
        candidates.append(point)
        inside.append(crosses & _in_rectangle(point, width, height, slack))
    corners = polygons.new_tensor([[0.0, 0.0], [width, 0.0], [0.0, height], [width, height]])
    x0, y0, x1, y1 = start[..., 0], start[..., 1], end[..., 0], end[..., 1]
    for corner in corners:  # even-odd rule: a ray from the corner to the right crosses an odd number of edges
        straddles = (y0 > corner[1]) != (y1 > corner[1])
        at_x = x0 + (corner[1] - y0) * (x1 - x0) / torch.where(straddles, y1 - y0, torch.ones_like(y0))
        crossings = (straddles & (corner[0] < at_x)).sum(dim=2)  # [N, P]
        candidates.append(corner.expand(len(polygons), 1, 2))
        inside.append((crossings % 2 == 1).any(dim=1, keepdim=True))  # inside any of the object's polygons
    points = torch.cat([candidate.reshape(len(polygons), -1, 2) for candidate in candidates], dim=1)
    keep = torch.cat([flags.reshape(len(polygons), -1) for flags in inside], dim=1)
    x = points[..., 0].clamp(0, width)
    y = points[..., 1].clamp(0, height)
    infinity = points.new_tensor(float("inf"))
    boxes = torch.stack(
        [
            torch.where(keep, x, infinity).amin(1),
            torch.where(keep, y, infinity).amin(1),
            torch.where(keep, x, -infinity).amax(1),
            torch.where(keep, y, -infinity).amax(1),
        ],
        dim=-1,
    )
    return torch.where(keep.any(dim=1, keepdim=True), boxes, torch.zeros_like(boxes))


def _in_rectangle(points: torch.Tensor, width: float, height: float, slack: float) -> torch.Tensor:
    x, y = points[..., 0], points[..., 1]
    return (x >= -slack) & (x <= width + slack) & (y >= -slack) & (y <= height + slack)
