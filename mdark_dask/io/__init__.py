"""Files: every ``astropy.io.fits`` call of the package, and nothing above it.

Raw frames scanned for their headers (:mod:`.fits`, plain headers by :mod:`.header`
without astropy) and read lazily by row windows (:mod:`.fits` readers, :mod:`.prepare`'s
compiled conversion, :mod:`.stack`'s dask views); sof files (:mod:`.sof`); product HDUs,
headers and products read back (:mod:`.product`); atomic writes.
"""
