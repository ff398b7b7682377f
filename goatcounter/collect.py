"""The collect flags of SiteSettings.collect: what is kept of each hit."""

COLLECT_NOTHING = 1
COLLECT_REFERRER = 2
COLLECT_USER_AGENT = 4
COLLECT_SCREEN_SIZE = 8
COLLECT_LOCATION = 16
COLLECT_LOCATION_REGION = 32
COLLECT_LANGUAGE = 64
COLLECT_SESSION = 128
COLLECT_HITS = 256

# Upstream turns collect 0 into this.
UPSTREAM_DEFAULT_COLLECT = 190
# New sites here also keep individual hits (256): exports and `goatcounter import`
# read them. Turn the bit off in the site settings to keep only the aggregates.
DEFAULT_COLLECT = UPSTREAM_DEFAULT_COLLECT | COLLECT_HITS
