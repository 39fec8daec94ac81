"""Screenshots of the report in headless Chromium, at a laptop's and a phone's width (docs/report-*.png).

    python docs/screenshot.py report/index.html docs/

Needs Debian's chromium and chromium-driver (as the tests do) and selenium.
The page is shot as the reader first sees it: the top 800 px at 1280 px wide,
the top 844 px at 390 px (an iPhone's viewport).
"""

import sys
from pathlib import Path

from selenium import webdriver


def main(report, out):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService("/usr/bin/chromedriver"), options=options)
    try:
        for width, height in ((1280, 800), (390, 844)):
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
            driver.get(Path(report).resolve().as_uri())
            driver.save_screenshot(str(Path(out) / f"report-{width}.png"))
    finally:
        driver.quit()


if __name__ == "__main__":
    main(*sys.argv[1:3])
