#!/usr/bin/env python3
"""Write the blank forms the shipped workflows offer (templates/forms/*.docx).

Each is a minimal WordprocessingML package (content types, package relationships, one
document part) with a title and a table of headings, so it opens in Word, WPS and
LibreOffice. Run from the repository root: python3 scripts/make_forms.py
"""
import zipfile
from xml.sax.saxutils import escape

FORMS = {
    "附件1-推荐表.docx": ("社区后备干部推荐表", ["姓名", "性别", "出生年月", "政治面貌", "学历", "现任职务", "推荐职位（正职/副职）", "推荐理由"]),
    "附件2-登记表.docx": ("社区后备干部登记表", ["姓名", "性别", "出生年月", "民族", "籍贯", "入党时间", "学历学位", "工作简历", "奖惩情况", "考察意见"]),
    "附件3-名册.docx": ("社区后备干部名册", ["序号", "社区", "姓名", "性别", "出生年月", "学历", "现任职务", "拟培养方向"]),
    "自荐报名表.docx": ("村级后备干部自荐报名表", ["姓名", "性别", "出生年月", "政治面貌", "学历", "联系电话", "个人简历", "自荐理由", "附件清单"]),
    "联审意见表.docx": ("村级后备干部资格联审意见表", ["审查部门", "审查对象", "审查意见", "经办人", "部门负责人签字", "日期"]),
}

CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"""

RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"""


def cell(text, width=3000):
    return (f'<w:tc><w:tcPr><w:tcW w:w="{width}" w:type="dxa"/></w:tcPr>'
            f'<w:p><w:r><w:t>{escape(text)}</w:t></w:r></w:p></w:tc>')


def document(title, headings):
    border = "".join(f'<w:{s} w:val="single" w:sz="4" w:space="0" w:color="000000"/>'
                     for s in ("top", "left", "bottom", "right", "insideH", "insideV"))
    rows = "".join(f"<w:tr>{cell(h)}{cell('', 6000)}</w:tr>" for h in headings)
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:pPr><w:jc w:val="center"/></w:pPr><w:r><w:rPr><w:b/><w:sz w:val="36"/></w:rPr><w:t>{escape(title)}</w:t></w:r></w:p><w:p><w:r><w:t>单位（盖章）：　　　　　　　　填表日期：　　年　　月　　日</w:t></w:r></w:p><w:tbl><w:tblPr><w:tblW w:w="9000" w:type="dxa"/><w:tblBorders>{border}</w:tblBorders></w:tblPr><w:tblGrid><w:gridCol w:w="3000"/><w:gridCol w:w="6000"/></w:tblGrid>{rows}</w:tbl><w:p/><w:sectPr><w:pgSz w:w="11906" w:h="16838"/><w:pgMar w:top="1440" w:right="1440" w:bottom="1440" w:left="1440" w:header="720" w:footer="720" w:gutter="0"/></w:sectPr></w:body></w:document>"""


for name, (title, headings) in FORMS.items():
    with zipfile.ZipFile(f"templates/forms/{name}", "w", zipfile.ZIP_DEFLATED) as z:
        # Fixed timestamps keep the files byte-for-byte reproducible.
        for part, text in (("[Content_Types].xml", CONTENT_TYPES), ("_rels/.rels", RELS),
                           ("word/document.xml", document(title, headings))):
            info = zipfile.ZipInfo(part, date_time=(2019, 7, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
    print("wrote", name)
