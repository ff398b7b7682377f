"""User agents that look like an access log's: for the benchmarks' generated traffic.

`ranked()` is a fixed set of distinct strings, most common first: browsers (Chrome,
Safari, Firefox, Edge, Samsung Internet, Opera, in-app web views) on Windows, macOS,
Linux, ChromeOS, Android and iOS, with their versions and device models, and 5 % bots
(search engines, SEO and AI crawlers, link previews, monitors, HTTP libraries).
`Mix` draws from it Zipf-like: the i-th most common string comes with a probability
proportional to 1/i (the most common in 9.5 % of draws, half of all draws among the
top 100 or so, and a long tail: 20,000 draws bring some 5,500 distinct strings).
`Mix.fresh` makes strings nobody sent before (the same families, other builds, devices
and locales): a user agent that no cache has seen yet.

Nothing here is random unless a Random is passed in: the set is the same on every run.
"""
from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator

SIZE = 21_000
BOT_SHARE = 0.05

# Chrome's major versions with the build each shipped as, and some of its patch numbers.
CHROME = {131: 6778, 130: 6723, 129: 6668, 128: 6613, 127: 6533, 126: 6478, 125: 6422,
          124: 6367, 123: 6312, 122: 6261, 121: 6167, 120: 6099, 119: 6045, 118: 5993,
          117: 5938, 116: 5845, 115: 5790, 114: 5735, 113: 5672, 112: 5615, 111: 5563,
          110: 5481, 109: 5414}
PATCHES = (39, 69, 85, 104, 135, 204)
EDGE = {131: 2903, 130: 2849, 129: 2792, 128: 2739, 127: 2651, 126: 2592, 125: 2535,
        124: 2478, 123: 2420, 122: 2365, 121: 2277, 120: 2210, 119: 2151, 118: 2088,
        117: 2045, 116: 1938, 109: 1518}
FIREFOX = [*range(133, 114, -1), 115, 128, 102]
# Samsung Internet and the Chrome it is built on.
SAMSUNG = [(27, 125), (26, 122), (25, 121), (24, 117), (23, 115), (22, 111), (21, 110),
           (20, 106), (19, 102)]
OPERA = [(115, 130), (114, 129), (113, 128), (112, 127), (111, 125), (110, 124), (109, 123),
         (108, 122), (106, 120), (105, 119), (95, 109)]
IOS = ["18.1.1", "18.1", "18.0.1", "18.0", "17.7.2", "17.7", "17.6.1", "17.6", "17.5.1",
       "17.5", "17.4.1", "17.4", "17.3.1", "17.3", "17.2.1", "17.2", "17.1.2", "17.1.1",
       "17.1", "17.0.3", "16.7.10", "16.7.8", "16.7.2", "16.6.1", "16.6", "16.5", "16.4.1",
       "16.3.1", "16.1.1", "15.8.3", "15.8", "15.7", "15.6.1", "18.2"]
# iOS build numbers in Mobile/..., by major version.
IOS_BUILD = {"18": "22B91", "17": "21H221", "16": "20H350", "15": "19H390"}
MACOS_SAFARI = ["18.1.1", "18.1", "18.0.1", "18.0", "17.6", "17.5", "17.4.1", "17.3.1",
                "17.2.1", "17.1.2", "17.0", "16.6", "16.5.2", "16.4", "16.1", "15.6.1", "14.1.2"]
MACOS_FIREFOX = ["10.15", "14.7", "14.6", "13.6", "12.7", "11.7", "10.14"]
ANDROID = [("14", "UP1A.231005.007"), ("13", "TP1A.220624.014"), ("15", "AP3A.240905.015.A2"),
           ("12", "SP1A.210812.016"), ("11", "RP1A.200720.012"), ("10", "QP1A.190711.020"),
           ("9", "PPR1.180610.011")]
# Device models, roughly most common first.
MODELS = [
    "SM-S918B", "SM-A546B", "SM-S911B", "SM-A536B", "SM-S928B", "SM-G991B", "SM-A556B",
    "SM-S921B", "SM-A156B", "SM-G998B", "Pixel 8", "Pixel 7", "SM-A346B", "SM-S908B",
    "SM-A526B", "SM-A525F", "SM-S901B", "SM-G996B", "SM-A515F", "Pixel 7a", "Pixel 8 Pro",
    "Pixel 6a", "SM-A256B", "SM-A145R", "SM-A146B", "SM-A137F", "SM-A127F", "SM-A125F",
    "SM-G781B", "SM-G780F", "SM-A336B", "SM-A245F", "SM-A236B", "SM-A155F", "SM-S926B",
    "SM-S916B", "SM-S906B", "SM-F946B", "SM-F731B", "SM-F936B", "SM-F721B", "SM-G973F",
    "SM-G975F", "SM-G970F", "SM-N986B", "SM-N981B", "SM-N975F", "SM-N960F", "SM-G960F",
    "SM-A505F", "SM-A715F", "SM-A217F", "SM-A207F", "SM-A057F", "SM-A047F", "SM-A035F",
    "SM-M336B", "SM-M236B", "SM-M127F", "SM-X710", "SM-X210", "SM-T510", "SM-T220",
    "SM-S711B", "SM-G990B", "SM-E135F", "SM-A315G", "SM-A705FN", "SM-J600G",
    "SM-S928U", "SM-S918U", "SM-G991U", "SM-A536U", "SM-A146U", "SM-S901U", "SM-G781U",
    "SM-S921U", "SM-A156U", "SM-A236U", "SM-N986U", "SM-G998U",
    "Pixel 9 Pro", "Pixel 9", "Pixel 6", "Pixel 6 Pro", "Pixel 5", "Pixel 4a", "Pixel Fold",
    "Pixel 8a", "Pixel 7 Pro", "Pixel Tablet", "Pixel 9 Pro XL", "Pixel 5a", "Pixel 4a (5G)",
    "23129RAA4G", "2201117TG", "2201117TY", "M2101K6G", "M2102J20SG", "22101316G",
    "23021RAAEG", "23090RA98G", "2312DRAABG", "22071212AG", "21091116AG", "2107113SG",
    "23049PCD8G", "24069RA21G", "22111317G", "23053RN02Y", "220333QAG", "M2007J20CG",
    "Redmi Note 8 Pro", "Redmi Note 9 Pro", "Redmi Note 10 Pro", "Redmi 9A", "Redmi 9C",
    "Mi 9T", "POCO X3 Pro", "POCO F5", "Redmi Note 8T", "Redmi Note 7", "Mi 10T Pro",
    "CPH2581", "CPH2449", "CPH2413", "CPH2219", "CPH2399", "CPH2173", "CPH2591", "CPH2269",
    "RMX3630", "RMX3710", "RMX2193", "RMX3363", "RMX3085", "RMX3521",
    "V2207", "V2231", "V2250", "V2120", "vivo 1906", "V2312",
    "IN2013", "LE2123", "NE2213", "GM1913", "KB2003", "HD1913", "CPH2451",
    "moto g(60)", "moto g54 5G", "moto g 5G (2023)", "motorola edge 40", "moto e13",
    "moto g(30)", "moto g84 5G", "moto g power (2022)", "motorola razr 40 ultra",
    "ELE-L29", "VOG-L29", "MAR-LX1A", "ANE-LX1", "JNY-LX1", "CLT-L29",
    "Nokia G21", "Nokia X20", "Nokia 5.4", "XQ-CT54", "XQ-DQ54", "XQ-BC52", "XQ-AU52",
    "FP4", "FP5", "A063", "Lenovo TB-X606F", "KFTRWI", "ASUS_AI2401", "ZenFone 8",
    "TECNO KI5k", "Infinix X6816", "itel A70", "TECNO CK7n", "Infinix X6833B",
]
# iPhone identifiers with their screens, for in-app web views.
IPHONES = [("iPhone15,2", "1179x2556", "3.00"), ("iPhone14,5", "1170x2532", "3.00"),
           ("iPhone16,1", "1179x2556", "3.00"), ("iPhone14,7", "1170x2532", "3.00"),
           ("iPhone13,2", "1170x2532", "3.00"), ("iPhone16,2", "1290x2796", "3.00"),
           ("iPhone15,3", "1290x2796", "3.00"), ("iPhone12,1", "828x1792", "2.00"),
           ("iPhone14,2", "1170x2532", "3.00"), ("iPhone15,4", "1179x2556", "3.00"),
           ("iPhone14,4", "1080x2340", "3.00"), ("iPhone12,8", "750x1334", "2.00"),
           ("iPhone17,1", "1206x2622", "3.00"), ("iPhone17,3", "1179x2556", "3.00"),
           ("iPhone13,4", "1284x2778", "3.00"), ("iPhone11,8", "828x1792", "2.00")]
LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT", "pt_BR", "ja_JP",
           "en_CA", "en_AU", "sv_SE", "pl_PL", "tr_TR", "es_MX", "en_IN", "ko_KR", "da_DK"]
CROS = ["15917.71.0", "15886.44.0", "15823.68.0", "15786.48.0", "15699.85.0", "15633.69.0",
        "15474.84.0", "15359.58.0", "14541.0.0", "16002.44.0"]
WINDOWS = [("Windows NT 10.0; Win64; x64", 1.0), ("Windows NT 10.0; WOW64", 0.03),
           ("Windows NT 6.1; Win64; x64", 0.02), ("Windows NT 6.3; Win64; x64", 0.01),
           ("Windows NT 10.0", 0.02)]
LINUX = [("X11; Linux x86_64", 1.0), ("X11; Ubuntu; Linux x86_64", 0.4),
         ("X11; Fedora; Linux x86_64", 0.1), ("X11; Linux aarch64", 0.02)]

WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
SAFARI_KIT = "AppleWebKit/605.1.15 (KHTML, like Gecko)"


def _recent(values: list, decay: float = 0.6, floor: float = 0.004) -> Iterator[tuple]:
    """(value, weight) with the newest (first) weighing most."""
    for i, v in enumerate(values):
        yield v, max(decay ** i, floor)


def _models(decay: float = 1.0) -> Iterator[tuple[str, float]]:
    for i, m in enumerate(MODELS):
        yield m, 1.0 / (i + 1) ** decay


def _chrome_full(major: int, patch_index: int) -> str:
    return f"{major}.0.{CHROME[major]}.{PATCHES[patch_index % len(PATCHES)]}"


def _browsers() -> Iterator[tuple[float, str]]:
    """(weight, user agent) of every browser string, the weight its family's share times
    how common its version and device are."""
    majors = sorted(CHROME, reverse=True)
    # Desktop Chrome sends a reduced user agent: the major version only.
    for (plat, pw), (v, vw) in itertools.product(WINDOWS, _recent(majors)):
        yield 0.24 * pw * vw, f"Mozilla/5.0 ({plat}) {WEBKIT} Chrome/{v}.0.0.0 Safari/537.36"
    for v, vw in _recent(majors):
        yield 0.06 * vw, (f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {WEBKIT} "
                          f"Chrome/{v}.0.0.0 Safari/537.36")
    for (plat, pw), (v, vw) in itertools.product(LINUX[:1] + LINUX[3:], _recent(majors)):
        yield 0.012 * pw * vw, f"Mozilla/5.0 ({plat}) {WEBKIT} Chrome/{v}.0.0.0 Safari/537.36"
    for (cros, cw), (v, vw) in itertools.product(_recent(CROS, 0.7), _recent(majors)):
        yield 0.008 * cw * vw, (f"Mozilla/5.0 (X11; CrOS x86_64 {cros}) {WEBKIT} "
                                f"Chrome/{v}.0.0.0 Safari/537.36")
    # Edge: the full version of Edge after a reduced Chrome.
    for (plat, pw), (v, vw), p in itertools.product(WINDOWS[:3], _recent(sorted(EDGE)[::-1]),
                                                    range(4)):
        yield 0.05 * pw * vw * 0.5 ** p, (
            f"Mozilla/5.0 ({plat}) {WEBKIT} Chrome/{v}.0.0.0 Safari/537.36 "
            f"Edg/{v}.0.{EDGE[v]}.{(26, 55, 76, 98)[p] + v % 7}")
    for v, vw in _recent(sorted(EDGE)[::-1]):
        yield 0.004 * vw, (f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {WEBKIT} "
                           f"Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.{EDGE[v]}.{70 + v % 9}")
    for (plat, pw), (v, vw) in itertools.product([*WINDOWS[:3], ("Windows NT 10.0", 0.05)],
                                                 _recent(FIREFOX, 0.55)):
        yield 0.028 * pw * vw, f"Mozilla/5.0 ({plat}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
    for (mac, mw), (v, vw) in itertools.product(_recent(MACOS_FIREFOX, 0.3),
                                                _recent(FIREFOX, 0.55)):
        yield 0.008 * mw * vw, (f"Mozilla/5.0 (Macintosh; Intel Mac OS X {mac}; rv:{v}.0) "
                                f"Gecko/20100101 Firefox/{v}.0")
    for (plat, pw), (v, vw) in itertools.product(LINUX, _recent(FIREFOX, 0.55)):
        yield 0.01 * pw * vw, f"Mozilla/5.0 ({plat}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
    for (s, sw) in _recent(MACOS_SAFARI, 0.6):
        yield 0.045 * sw, (f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {SAFARI_KIT} "
                           f"Version/{s} Safari/605.1.15")
    opera_on = [*WINDOWS[:2], ("Macintosh; Intel Mac OS X 10_15_7", 0.3)]
    for (plat, pw), ((o, c), vw) in itertools.product(opera_on, _recent(OPERA, 0.5)):
        yield 0.01 * pw * vw, (f"Mozilla/5.0 ({plat}) {WEBKIT} Chrome/{c}.0.0.0 "
                               f"Safari/537.36 OPR/{o}.0.0.0")
    # Mobile Chrome: reduced too ("Android 10; K"), but older versions and others still
    # name the device.
    for v, vw in _recent(majors):
        yield 0.17 * vw, (f"Mozilla/5.0 (Linux; Android 10; K) {WEBKIT} Chrome/{v}.0.0.0 "
                          "Mobile Safari/537.36")
    android_w = (0.35, 0.22, 0.15, 0.12, 0.1, 0.06, 0.02)
    for ((a, build), aw), (m, mw), (v, vw) in itertools.product(
            zip(ANDROID, android_w, strict=True), _models(), _recent(majors[:12], 0.5)):
        yield 0.02 * aw * mw * vw, (f"Mozilla/5.0 (Linux; Android {a}; {m}) {WEBKIT} "
                                    f"Chrome/{_chrome_full(v, len(m))} Mobile Safari/537.36")
        # In-app browsers (web views), with the app's own part.
        yield 0.012 * aw * mw * vw, (
            f"Mozilla/5.0 (Linux; Android {a}; {m} Build/{build}; wv) {WEBKIT} Version/4.0 "
            f"Chrome/{_chrome_full(v, len(m) + 1)} Mobile Safari/537.36")
        yield 0.006 * aw * mw * vw, (
            f"Mozilla/5.0 (Linux; Android {a}; {m} Build/{build}; wv) {WEBKIT} Version/4.0 "
            f"Chrome/{_chrome_full(v, len(m) + 2)} Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/"
            f"{490 - (131 - v) * 4}.0.0.{len(m) + 30}.{100 + v};]")
        yield 0.004 * aw * mw * vw, (
            f"Mozilla/5.0 (Linux; Android {a}; {m} Build/{build}; wv) {WEBKIT} Version/4.0 "
            f"Chrome/{_chrome_full(v, len(m) + 3)} Mobile Safari/537.36 Instagram "
            f"{358 - (131 - v) * 5}.0.0.{40 + len(m)}.{90 + v % 30} Android "
            f"({int(a) + 20}/{a}; 420dpi; 1080x2340; {_maker(m)}; {m}; {m.lower()[:6]}; "
            f"qcom; en_US; {600000000 + v * 1000 + len(m)})")
    for ((a, _), aw), (m, mw), ((s, c), sw) in itertools.product(
            zip(ANDROID, android_w, strict=True), _models(), _recent(SAMSUNG, 0.5)):
        if m.startswith("SM-"):
            yield 0.04 * aw * mw * sw, (
                f"Mozilla/5.0 (Linux; Android {a}; {m}) {WEBKIT} SamsungBrowser/{s}.0 "
                f"Chrome/{c}.0.0.0 Mobile Safari/537.36")
    for (s, c), sw in _recent(SAMSUNG, 0.5):
        yield 0.01 * sw, (f"Mozilla/5.0 (Linux; Android 10; K) {WEBKIT} SamsungBrowser/{s}.0 "
                          f"Chrome/{c}.0.0.0 Mobile Safari/537.36")
    for ((a, _), aw), (v, vw) in itertools.product(zip(ANDROID, android_w, strict=True),
                                                   _recent(FIREFOX, 0.5)):
        yield 0.005 * aw * vw, (f"Mozilla/5.0 (Android {a}; Mobile; rv:{v}.0) Gecko/{v}.0 "
                                f"Firefox/{v}.0")
    for ((a, _), aw), (v, vw) in itertools.product(zip(ANDROID, android_w, strict=True),
                                                   _recent(sorted(EDGE)[::-1])):
        yield 0.003 * aw * vw, (f"Mozilla/5.0 (Linux; Android {a}; K) {WEBKIT} Chrome/{v}.0.0.0"
                                f" Mobile Safari/537.36 EdgA/{v}.0.{EDGE[v]}.{64 + v % 11}")
    for ((o, c), ow) in _recent(OPERA, 0.5):
        yield 0.003 * ow, (f"Mozilla/5.0 (Linux; Android 10; K) {WEBKIT} Chrome/{c}.0.0.0 "
                           f"Mobile Safari/537.36 OPR/{o - 30}.{o % 7}.{2254 + o}.{60 + o}")
    # iOS: Safari on iPhone and iPad, Chrome, Firefox and Edge (all WebKit), in-app views.
    for ios, iw in _recent(IOS, 0.75, 0.002):
        os_ = ios.replace(".", "_")
        mobile = IOS_BUILD[ios.split(".")[0]]
        yield 0.17 * iw, (f"Mozilla/5.0 (iPhone; CPU iPhone OS {os_} like Mac OS X) {SAFARI_KIT}"
                          f" Version/{ios} Mobile/15E148 Safari/604.1")
        yield 0.02 * iw, (f"Mozilla/5.0 (iPad; CPU OS {os_} like Mac OS X) {SAFARI_KIT} "
                          f"Version/{ios} Mobile/15E148 Safari/604.1")
        for (v, vw), p in itertools.product(_recent(majors[:10], 0.5), range(3)):
            yield 0.02 * iw * vw * 0.5 ** p, (
                f"Mozilla/5.0 (iPhone; CPU iPhone OS {os_} like Mac OS X) {SAFARI_KIT} "
                f"CriOS/{_chrome_full(v, p)} Mobile/15E148 Safari/604.1")
        for v, vw in _recent(FIREFOX[:10], 0.5):
            yield 0.003 * iw * vw, (
                f"Mozilla/5.0 (iPhone; CPU iPhone OS {os_} like Mac OS X) {SAFARI_KIT} "
                f"FxiOS/{v}.{v % 3} Mobile/15E148 Safari/605.1.15")
        for v, vw in _recent(sorted(EDGE)[::-1][:8], 0.5):
            yield 0.002 * iw * vw, (
                f"Mozilla/5.0 (iPhone; CPU iPhone OS {os_} like Mac OS X) {SAFARI_KIT} "
                f"Version/{ios.split('.')[0]}.0 EdgiOS/{v}.{EDGE[v]}.{59 + v % 9} "
                "Mobile/15E148 Safari/605.1.15")
        for ((dev, screen, scale), dw), (loc, lw) in itertools.product(
                _recent(IPHONES, 0.8), _recent(LOCALES, 0.5)):
            w = iw * dw * lw
            yield 0.01 * w, (
                f"Mozilla/5.0 (iPhone; CPU iPhone OS {os_} like Mac OS X) {SAFARI_KIT} "
                f"Mobile/{mobile} Instagram {355 - len(ios)}.0.0.{30 + len(dev)}.{80 + len(loc)}"
                f" ({dev}; iOS {os_}; {loc}; {loc[:2]}; scale={scale}; {screen}; "
                f"{650000000 + len(os_) * 1000})")
            yield 0.008 * w, (
                f"Mozilla/5.0 (iPhone; CPU iPhone OS {os_} like Mac OS X) {SAFARI_KIT} "
                f"Mobile/{mobile} [FBAN/FBIOS;FBAV/{488 - len(ios)}.0.0.{40 + len(dev)}.108;"
                f"FBBV/{665000000 + len(os_)};FBDV/{dev};FBMD/iPhone;FBSN/iOS;FBSV/{ios};"
                f"FBSS/{scale[0]};FBID/phone;FBLC/{loc};FBOP/5;FBRV/{667000000 + len(loc)}]")


def _maker(model: str) -> str:
    if model.startswith("SM-"):
        return "samsung"
    if model.startswith("Pixel"):
        return "Google"
    if model.startswith(("CPH", "RMX")):
        return "OPPO"
    if model[0].isdigit() or model.startswith(("Redmi", "Mi ", "POCO", "M2")):
        return "Xiaomi"
    return model.split()[0].split("-")[0]


BOTS_PLAIN = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.2; "
    "+https://openai.com/gptbot",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; "
    "+claudebot@anthropic.com)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (compatible; DotBot/1.2; +https://opensiteexplorer.org/dotbot; "
    "help@moz.com)",
    "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
    "Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile "
    "Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
    "Mozilla/5.0 (compatible; Bytespider; spider-feedback@bytedance.com)",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "Twitterbot/1.0",
    "Mozilla/5.0 (compatible; SeznamBot/4.0; +https://o-seznam.cz/napoveda/vyhledavani/en/"
    "seznambot-crawler/)",
    "CCBot/2.0 (https://commoncrawl.org/faq/)",
    "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "TelegramBot (like TwitterBot)",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/"
    "crawler)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; PerplexityBot/1.0; "
    "+https://perplexity.ai/perplexitybot)",
    "Mozilla/5.0 (compatible; Pingdom.com_bot_version_1.4_(http://www.pingdom.com/))",
    "Googlebot-Image/1.0",
    "Mozilla/5.0 (compatible; Google-InspectionTool/1.0;)",
    "AdsBot-Google (+http://www.google.com/adsbot.html)",
    "Go-http-client/1.1", "Go-http-client/2.0", "node-fetch/1.0 (+https://github.com/bitinn/"
    "node-fetch)", "undici", "Mediapartners-Google",
]


def _bots() -> Iterator[tuple[float, str]]:
    """(weight, user agent) of every bot string."""
    for ua, w in _recent(BOTS_PLAIN, 0.85, 0.01):
        yield w, ua
    majors = sorted(CHROME, reverse=True)
    for (v, vw), p in itertools.product(_recent(majors, 0.6), range(len(PATCHES))):
        w = vw * 0.6 ** p
        yield 0.8 * w, (f"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) {WEBKIT} "
                        f"Chrome/{_chrome_full(v, p)} Mobile Safari/537.36 (compatible; "
                        "Googlebot/2.1; +http://www.google.com/bot.html)")
        yield 0.5 * w, (f"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; "
                        f"bingbot/2.0; +http://www.bing.com/bingbot.htm) "
                        f"Chrome/{_chrome_full(v, p + 1)} Safari/537.36")
        yield 0.3 * w, (f"Mozilla/5.0 (X11; Linux x86_64) {WEBKIT} "
                        f"HeadlessChrome/{_chrome_full(v, p + 2)} Safari/537.36")
        yield 0.1 * w, (f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {WEBKIT} "
                        f"HeadlessChrome/{_chrome_full(v, p + 3)} Safari/537.36")
    for s, sw in _recent(MACOS_SAFARI, 0.7):
        yield 0.2 * sw, (f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {SAFARI_KIT} "
                         f"Version/{s} Safari/605.1.15 (Applebot/0.1; "
                         "+http://www.apple.com/go/applebot)")
    libs = [("curl/8.{}.{}", range(12), range(2), 0.3),
            ("curl/7.{}.{}", range(88, 58, -1), range(2), 0.15),
            ("Wget/1.{}.{}", range(24, 19, -1), range(5), 0.1),
            ("python-requests/2.{}.{}", range(32, 19, -1), range(4), 0.4),
            ("python-httpx/0.{}.{}", range(28, 22, -1), range(3), 0.1),
            ("Python-urllib/3.{}{}", range(13, 7, -1), [""], 0.1),
            ("aiohttp/3.{}.{}", range(11, 7, -1), range(6), 0.05),
            ("okhttp/4.{}.{}", range(12, 8, -1), range(4), 0.1),
            ("okhttp/3.{}.{}", range(14, 9, -1), range(3), 0.04),
            ("axios/1.{}.{}", range(7, 0, -1), range(8), 0.1),
            ("Java/{}.0.{}", (21, 17, 11), range(1, 26), 0.05),
            ("Apache-HttpClient/4.5.{} (Java/{})", range(14, 1, -1), ("17.0.9", "11.0.21"),
             0.04),
            ("Scrapy/2.{}.{} (+https://scrapy.org)", range(12, 4, -1), range(3), 0.03),
            ("PostmanRuntime/7.{}.{}", range(42, 28, -1), range(3), 0.02),
            ("Dart/3.{} (dart:io)", range(6, 0, -1), [""], 0.02),
            ("libwww-perl/6.{}{}", range(77, 50, -1), [""], 0.01)]
    for fmt, xs, ys, lw in libs:
        for (x, xw), (y, yw) in itertools.product(_recent(list(xs), 0.7),
                                                  _recent(list(ys), 0.6)):
            yield lw * xw * yw, fmt.format(x, y)


def _top(items: Iterator[tuple[float, str]], n: int) -> list[str]:
    best: dict[str, float] = {}
    for w, ua in items:
        best[ua] = max(w, best.get(ua, 0.0))
    ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) < n:
        raise ValueError(f"only {len(ranked)} distinct strings, {n} wanted")
    return [ua for ua, _ in ranked[:n]]


def ranked(size: int = SIZE, bot_share: float = BOT_SHARE) -> tuple[list[str], list[str]]:
    """(browsers, bots), each most common first: `size` distinct strings in all, of
    which `bot_share` are bots."""
    bots = round(size * bot_share)
    return _top(_browsers(), size - bots), _top(_bots(), bots)


class Mix:
    """Draws user agents Zipf-like from `ranked()`: a bot with probability `bot_share`,
    the i-th most common one of its kind with a probability proportional to 1/i**s."""

    def __init__(self, rng: random.Random, size: int = SIZE, bot_share: float = BOT_SHARE,
                 s: float = 1.0) -> None:
        self.rng = rng
        self.bot_share = bot_share
        self.browsers, self.bots = ranked(size, bot_share)
        self._cum = {kind: list(itertools.accumulate(1.0 / (i + 1) ** s
                                                     for i in range(len(uas))))
                     for kind, uas in (("browsers", self.browsers), ("bots", self.bots))}
        self._bot_set = set(self.bots)
        self._known = set(self.browsers) | self._bot_set
        self._fresh: set[str] = set()
        self._fresh_bots: set[str] = set()

    def draw(self) -> str:
        kind = "bots" if self.rng.random() < self.bot_share else "browsers"
        uas = getattr(self, kind)
        cum = self._cum[kind]
        return uas[bisect.bisect(cum, self.rng.random() * cum[-1])]

    def sample(self, n: int) -> list[str]:
        return [self.draw() for _ in range(n)]

    def is_bot(self, ua: str) -> bool:
        """Whether `ua` came from the bot part of the set (or of `fresh`)."""
        return ua in self._bot_set or ua in self._fresh_bots

    def fresh(self) -> str:
        """A user agent that is in neither the set nor any earlier `fresh` answer: the same
        families, with other builds, devices and locales (a bot with `bot_share`)."""
        while True:
            bot = self.rng.random() < self.bot_share
            ua = self._fresh_bot() if bot else self._fresh_browser()
            if ua not in self._known and ua not in self._fresh:
                self._fresh.add(ua)
                if bot:
                    self._fresh_bots.add(ua)
                return ua

    def _fresh_browser(self) -> str:
        r = self.rng
        major = r.choice(sorted(CHROME))
        chrome = f"{major}.0.{CHROME[major]}.{r.randrange(1, 250)}"
        a, build = r.choice(ANDROID)
        model = r.choice(MODELS)
        ios = r.choice(IOS)
        os_ = ios.replace(".", "_")
        dev, screen, scale = r.choice(IPHONES)
        loc = r.choice(LOCALES)
        kind = r.randrange(6)
        if kind == 0:
            return (f"Mozilla/5.0 (Linux; Android {a}; {model} Build/{build}; wv) {WEBKIT} "
                    f"Version/4.0 Chrome/{chrome} Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/"
                    f"{r.randrange(380, 495)}.0.0.{r.randrange(10, 60)}.{r.randrange(60, 200)};]")
        if kind == 1:
            return (f"Mozilla/5.0 (iPhone; CPU iPhone OS {os_} like Mac OS X) {SAFARI_KIT} "
                    f"Mobile/{IOS_BUILD[ios.split('.')[0]]} Instagram "
                    f"{r.randrange(280, 360)}.0.0.{r.randrange(10, 60)}.{r.randrange(60, 130)} "
                    f"({dev}; iOS {os_}; {loc}; {loc[:2]}; scale={scale}; {screen}; "
                    f"{r.randrange(400000000, 700000000)})")
        if kind == 2:
            return (f"Mozilla/5.0 (Linux; Android {a}; {model} Build/{build}; wv) {WEBKIT} "
                    f"Version/4.0 Chrome/{chrome} Mobile Safari/537.36")
        if kind == 3:
            return (f"Mozilla/5.0 (Linux; Android {a}; {model}) {WEBKIT} Chrome/{chrome} "
                    "Mobile Safari/537.36")
        if kind == 4:
            plat = r.choice(WINDOWS)[0]
            return (f"Mozilla/5.0 ({plat}) {WEBKIT} Chrome/{major}.0.0.0 Safari/537.36 "
                    f"Edg/{major}.0.{EDGE.get(major, 2903)}.{r.randrange(1, 200)}")
        return (f"Mozilla/5.0 (iPhone; CPU iPhone OS {os_} like Mac OS X) {SAFARI_KIT} "
                f"CriOS/{chrome} Mobile/15E148 Safari/604.1")

    def _fresh_bot(self) -> str:
        r = self.rng
        major = r.choice(sorted(CHROME))
        chrome = f"{major}.0.{CHROME[major]}.{r.randrange(1, 250)}"
        kind = r.randrange(4)
        if kind == 0:
            return (f"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) {WEBKIT} "
                    f"Chrome/{chrome} Mobile Safari/537.36 (compatible; Googlebot/2.1; "
                    "+http://www.google.com/bot.html)")
        if kind == 1:
            return (f"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; "
                    f"bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/{chrome} "
                    "Safari/537.36")
        if kind == 2:
            return f"Mozilla/5.0 (X11; Linux x86_64) {WEBKIT} HeadlessChrome/{chrome} Safari/537.36"
        return f"python-requests/2.{r.randrange(0, 33)}.{r.randrange(0, 100)}"
