"""Reports: what people read; terminal tables and logs (:mod:`.tables`), the QC figures
reduced from the images (:mod:`.figures`), laid out as pictures (:mod:`.draw`,
:mod:`.axes`) and painted with Pillow (:mod:`.canvas`), the pages (:mod:`.page`,
:mod:`.history`) and the workers' statistics of a run (:mod:`.runstats`)."""
