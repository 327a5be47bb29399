"""PNG files of the Cityscapes formats: header checks, then the fastest decoder whose pixels are
Pillow's (png_io, fast_png); writing label maps, masks and photos (png_write)."""
