"""Synthetic street scenes in the exact layout of the Cityscapes dataset.

Real Cityscapes cannot be downloaded here, so the project embeds a deterministic generator of
look-alike frames: a straight street seen from a car (the real camera geometry of the dataset),
with buildings, sidewalks, vegetation, poles, signs, lights, and traffic participants standing on
the ground plane in perspective. Every frame has the files of the real dataset::

    leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png        RGB
    gtFine/<split>/<city>/<stem>_gtFine_labelIds.png         L, label ids 0..33
    gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png      I;16, labelId*1000+k or labelId
    gtFine/<split>/<city>/<stem>_gtFine_color.png            RGBA, label colours
    disparity/<split>/<city>/<stem>_disparity.png            I;16, 0 = invalid, else 256*d+1
    camera/<split>/<city>/<stem>_camera.json

The scene is built in metres in the world (x right, y up, z forward, camera ``mount`` metres above
the road) and projected with the dataset's intrinsics, so depth, disparity and the size and height
of objects in the image agree with each other. Everything is painted with Pillow on a canvas of
primitive ids (far things first), then looked up into label, instance, depth and colour tables
with numpy, so no Python loop runs per pixel.

A frame depends only on (seed, split, frame name) and the image size: the scene itself is drawn
from a random stream that never sees the size, so the same frame at two sizes shows the same
street. Edge cases the evaluation has to handle are put in on purpose: group regions (crowds,
clusters of parked cars or bicycles: instanceIds = bare labelId), void regions (ego vehicle,
rectification border, out of roi, static, dynamic, ground, parking, rail track, guard rail,
bridge, tunnel, polegroup, unlabeled), tiny and distant instances (beyond 100 m), instances split
by occluders, caravans and trailers, and stereo holes, including instances whose disparity is
mostly invalid.

scenes writes frames, splits and datasets (the rest of the project calls it); results derives
participant-like results from them. The scene itself is built in dataset, camera, primitives, palettes,
street, ground, sides, actors, furniture and borders, and drawn by render.
"""
