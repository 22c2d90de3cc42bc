"""Reports: what people read; terminal tables and logs (:mod:`.tables`), the QC figures
reduced from the images (:mod:`.figures`) and drawn with matplotlib (:mod:`.draw`), the
night page (:mod:`.page`) and the workers' statistics of a run (:mod:`.runstats`)."""
