#!/usr/bin/env python3
"""One-off importer: turn the `chinese_holiday` crate's table into config/calendar/YYYY.json.

The output follows the NateScarlet/holiday-cn JSON layout so administrators can drop in a
new year's file from that project or write one by hand from the State Council notice.
Usage: scripts/import_chinese_holiday.py PATH/TO/chinese_holiday/src/constants.rs OUTDIR
"""
import json, re, sys

NAMES = {
    "NewYearsDay": "元旦", "SpringFestival": "春节", "ChingMingFestival": "清明节",
    "InternationalWorkersDay": "劳动节", "DragonBoatFestival": "端午节",
    "MidAutumnFestival": "中秋节", "NationalDay": "国庆节", "Other": "其他",
}
src = open(sys.argv[1], encoding="utf-8").read()
out = sys.argv[2]
years = {}
papers = {}
cur = None
for block in re.split(r"\n    // (\d{4}) 年节假日安排\n", src)[1:]:
    pass
parts = re.split(r"// (\d{4}) 年节假日安排", src)
for i in range(1, len(parts), 2):
    year = int(parts[i]); body = parts[i + 1]
    papers[year] = re.findall(r"//\s*(https?://\S+)", body)
    days = []
    for y, m, d, kind in re.findall(r"Ymd::new\(\s*(\d{4}),\s*(\d+),\s*(\d+)\s*\),\s*DayKind::(\w+)", body):
        if int(y) != year:
            # a December entry filed under next year's notice still belongs to its own date
            pass
        mm = re.match(r"(\w+?)(Holiday|Workday)$", kind)
        name = NAMES[mm.group(1)]
        days.append({"name": name, "date": f"{int(y):04d}-{int(m):02d}-{int(d):02d}",
                     "isOffDay": mm.group(2) == "Holiday"})
    years[year] = days
for year in range(2019, 2027):
    doc = {"year": year, "papers": [p.replace("http://", "https://") for p in papers[year]],
           "days": years[year]}
    with open(f"{out}/{year}.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=2)
        f.write("\n")
    print(year, len(years[year]))
