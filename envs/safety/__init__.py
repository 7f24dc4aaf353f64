"""Safety by jurisdiction: the standards' formulas and each jurisdiction's profile, as data.

`standards` holds ISO/TS 15066 and ISO 13855 values and formulas (power-and-force limits per
body region, the protective separation distance); `profiles` loads the shipped jurisdiction
profiles (``jurisdictions/*.yaml``: KR, JP, US, EU) and applies a site's tightening. Every
verdict built on them is an indicative simulation check, not a certification.
"""
