"""Figures for looking at segmentation samples: a PNG grid, a sampling GIF and
the sheet of one image's samples (scripts/sample.py).

    from hpu_jax import plots
    plots.save_example_grid('grid.png', images, annotations, samples,
                            titles=ids, sample_probs=probs)
    plots.save_sampling_gif('sampling.gif', image,
                            {'full': s_full, 'local': s_local, 'global': s_global},
                            annotations=annotations)

Shapes (numpy or jax arrays): images [E, H, W] (any range, shown grayscale;
[E, H, W, 1] is accepted too), annotations [E, A, H, W] and samples
[E, S, H, W] binary 0/1 masks, sample_probs [E, S, H, W] foreground
probabilities. The sampler's `labels` are [S, B, H, W]: pass
`np.swapaxes(labels, 0, 1)` as samples (and `np.swapaxes(probs[..., 1], 0, 1)`
as sample_probs).

Masks are drawn on the image: a translucent fill plus a solid outline, blue
for annotations (radiologists) and orange for model samples; an empty mask is
marked "empty". Standard-deviation maps share one fixed colour scale [0, 0.5]
(0.5 is the largest possible std of a 0/1 variable) so rows and columns can be
compared.

How it is drawn: panels are composed pixel-exactly with numpy (an image is
enlarged by a whole factor to about 100-160 px, or subsampled by a whole
stride if larger, so no pixel is blurred or duplicated unevenly); the text and
colorbars are drawn by matplotlib's object-oriented Agg canvas on a
transparent layer laid over them (pyplot and the global backend are never
touched); Pillow writes the files.
"""
# pylint: disable=unused-import
from hpu_jax.plots.example_grid import save_example_grid
from hpu_jax.plots.panels import (ANNOTATION_COLOR, PROB_CMAP, SAMPLE_COLOR, STD_CMAP, STD_RANGE,
                                  colorize, mask_outline, mask_overlay, normalize_image, pixel_std)
from hpu_jax.plots.sample_sheet import render_sample_sheet, save_sample_sheet
from hpu_jax.plots.sampling_gif import save_sampling_gif
# The row labels of the GIF, defined with the sampling modes.
from hpu_jax.sampling import MODE_LABELS
