"""Write a synthetic demo dataset in the publishers' own file formats.

``write_demo_dataset`` builds a fictional Integrated Care System (or, with ``scale="england"``,
a fictional England of real national size) and writes every input the pipeline reads, laid out
exactly as NHS England, ODS, MHCLG and ONS ship them (see ``/work/shared/FORMATS.md``): the same
file names, headers (embedded newlines, trailing spaces and truncations included), value styles
and quirks. All codes and names are synthetic and say so ("DEMO", "Demo", practice codes
``Y9nnnn``, PCN codes ``U9nnnn``, LSOA codes ``E011nnnnn``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
from pyproj import Transformer

from pophealth.demo import _model, _qof, _successors
from pophealth.demo._model import DemoWorld
from pophealth.sources import demo_file_names, release_from_name

PUBLICATION = "GP_PRAC_PAT_LIST"
EXTRACT_DATE = "2025-10-01"

#: Source (fetch entry) name -> demo file name, from the one source registry.
FILE_NAMES: dict[str, str] = {**demo_file_names(), "readme": "README_SYNTHETIC.txt"}
# month of the current workforce release (earlier releases replace it in the file name)
WORKFORCE_MONTH = release_from_name("workforce", FILE_NAMES["workforce"])
PCN_WORKFORCE_MONTH = release_from_name("pcn_workforce", FILE_NAMES["pcn_workforce"])

# ---------------------------------------------------------------------------------------------
# Official headers
# ---------------------------------------------------------------------------------------------

REGISTRATIONS_LSOA_HEADER = [
    "PUBLICATION",
    "EXTRACT_DATE",
    "PRACTICE_CODE",
    "PRACTICE_NAME",
    "LSOA_CODE",
    "SEX",
    "NUMBER_OF_PATIENTS",
]
PRACTICE_TOTALS_HEADER = [
    "PUBLICATION",
    "EXTRACT_DATE",
    "TYPE",
    "SUB_ICB_LOCATION_CODE",
    "ONS_SUB_ICB_LOCATION_CODE",
    "CODE",
    "POSTCODE",
    "SEX",
    "AGE",
    "NUMBER_OF_PATIENTS",
]
QUINARY_HEADER = [
    "PUBLICATION",
    "EXTRACT_DATE",
    "ORG_TYPE",
    "ORG_CODE",
    "ONS_CODE",
    "POSTCODE",
    "SEX",
    "AGE_GROUP_5",
    "NUMBER_OF_PATIENTS",
]
SINGLE_AGE_HEADER = [
    "EXTRACT_DATE",
    "SUB_ICB_LOCATION_CODE",
    "ONS_SUB_ICB_LOCATION_CODE",
    "ORG_CODE",
    "POSTCODE",
    "SEX",
    "AGE",
    "NUMBER_OF_PATIENTS",
]
PRACTICE_MAP_HEADER = [
    "PUBLICATION",
    "EXTRACT_DATE",
    "PRACTICE_CODE",
    "PRACTICE_NAME",
    "PRACTICE_POSTCODE",
    "PCN_CODE",
    "PCN_NAME",
    "ONS_SUB_ICB_LOCATION_CODE",
    "SUB_ICB_LOCATION_CODE",
    "SUB_ICB_LOCATION_NAME",
    "ONS_ICB_CODE",
    "ICB_CODE",
    "ICB_NAME",
    "ONS_COMM_REGION_CODE",
    "COMM_REGION_CODE",
    "COMM_REGION_NAME",
    "SUPPLIER_NAME",
]
EPCN_DETAILS_HEADER = [
    "PCN Code",
    "PCN Name",
    "Current Sub ICB Loc Code",
    "Sub ICB Location",
    "Open Date",
    "Close Date",
    "Address Line 1",
    "Address Line 2",
    "Address Line 3",
    "Address Line 4",
    "Address Line 5",
    "Postcode",
]
EPCN_PARTNER_HEADER = [
    "Partner\nOrganisation\nCode",
    "Partner\nName",
    "Practice\nParent\nSub ICB Loc Code",
    "Practice\nParent\nSub ICB Loc Name",
    "PCN Code",
    "PCN Name",
    "PCN Parent\nSub ICB Loc Code",
    "PCN Parent\nSub ICB Loc Name",
    "Practice to PCN\nRelationship\nStart Date",
    "Practice to PCN\nRelationship\nEnd Date",
    "Practice Sub ICB Loc and PCN Sub ICB Loc Match ",
]
PAYMENTS_HEADER = [
    "NHS England (Region) code",
    "NHS England (Region) Name",
    "CCG Code",
    "Sub ICB NAME",
    "Code",
    "CCG NAME",
    "Practice Code",
    "Practice Name",
    "Practice Address",
    "Practice Postcode",
    "Practice Open Date",
    "Practice Close Date",
    "Contract Type",
    "Dispensing Practice",
    "Practice type",
    "Practice Rurality",
    "Atypical characteristics",
    "Number of Registered Patients (Last Known Figure)",
    "Number of Weighted Patients (Last Known Figure)",
    "Average payments per registered patient",
    "Average payments per weighted patient",
    "Global Sum",
    "MPIG Correction factor",
    "Balance of PMS Expenditure",
    "Total QOF Payments",
    "Childhood Vaccination and Immunisation Scheme",
    "GP Extended Hours Access",
    "Influenza and Pneumococcal Immunisations",
    "Learning Disabilities",
    "Meningitis",
    "Minor Surgery",
    "Out Of Area in Hours Urgent Care",
    "Pertussis",
    "Rotavirus and Shingles Immunisation",
    "Services for Violent Patients",
    "Medical Assessment Reviews",
    "Weight Management Service",
    "Local Incentive Schemes",
    "Premises Payments",
    "Seniority",
    "Doctors Retainer Scheme Payments",
    "Total Locum Allowances",
    "Appraisal - Appraiser Costs in Respect of Locums",
    "Prolonged Study Leave",
    "PCO Admin Other",
    "Information Management and Technology",
    "Non DES Item Pneumococcal Vaccine, Childhood Immunisation Main Programme",
    "General Practice Transformation",
    "PCN Participation",
    "Prescribing Fee Payments",
    "Dispensing Fee Payments",
    "Reimbursement of Drugs",
    "winter Access Fund",
    "Other Payments",
    "Total NHS Payments to General Practice",
    "Deductions for Pensions, Levies and Prescription Charge Income",
    "Total NHS Payments to General Practice Minus Deductions",
    "Total NHS Payments to General Practice including covid vaccination, covid support and long"
    " covid payments",
    "Total NHS Payments including PCN Workforce, Leadership and Support",
    "Total NHS Payments to General Practice including Covid and PCN payments",
    "Total NHS Payments to General Practice including Covid and PCN payments minus deductions",
    "PCN Leadership",
    "PCN Support",
    "PCN Extended Hours Access",
    "PCN Workforce",
    "PCN Investment and impact Fund",
    "PCN Care Home Premium",
    "PCN Enhanced Access",
    "Covid Immunisation",
    "Covid Support and Expansion",
    "Long Covid",
    "Average payments per registered patient including PCN Workforce, Leadership and Support",
    "Average payments per weighted patient including PCN Workforce, Leadership and Support",
    "Average payments per registered patient including covid vaccination, covid support and long"
    " covid payments",
    "Average payments per weighted patient including covid vaccination, covid support and long"
    " covid payments",
]

_DECILE = "Decile (where 1 is most deprived 10% of LSOAs)"
_RANK = "Rank (where 1 is most deprived)"
# (label stem, score suffix) for each IoD measure, in File 7 order; keys match domain_scores()
IOD_MEASURES: list[tuple[str, str, str]] = [
    ("imd", "Index of Multiple Deprivation (IMD)", "Score"),
    ("income", "Income", "Score (rate)"),
    ("employment", "Employment", "Score (rate)"),
    ("education", "Education, Skills and Training", "Score"),
    ("health", "Health Deprivation and Disability", "Score"),
    ("crime", "Crime", "Score"),
    ("barriers", "Barriers to Housing and Services", "Score"),
    ("living_env", "Living Environment", "Score"),
    ("idaci", "Income Deprivation Affecting Children Index (IDACI)", "Score (rate)"),
    ("idaopi", "Income Deprivation Affecting Older People (IDAOPI)", "Score (rate)"),
    ("cyp", "Children and Young People Sub-domain", "Score"),
    ("adult_skills", "Adult Skills Sub-domain", "Score"),
    ("geo_barriers", "Geographical Barriers Sub-domain", "Score"),
    ("wider_barriers", "Wider Barriers Sub-domain", "Score"),
    ("indoors", "Indoors Sub-domain", "Score"),
    ("outdoors", "Outdoors Sub-domain", "Score"),
]


def _iod_measure_headers() -> list[str]:
    cols = []
    for _, stem, score in IOD_MEASURES:
        cols += [f"{stem} {score}", f"{stem} {_RANK}", f"{stem} {_DECILE}"]
    return cols


def iod2025_header() -> list[str]:
    """The 56 headers of IoD2025 File 7, including the official file's one truncated header."""
    measures = _iod_measure_headers()
    truncated = "Children and Young People Sub-domain Decile (where 1 is most deprived 10% of LSO"
    measures = [
        truncated if h.startswith("Children and Young People Sub-domain Decile") else h
        for h in measures
    ]
    return [
        "LSOA code (2021)",
        "LSOA name (2021)",
        "Local Authority District code (2024)",
        "Local Authority District name (2024)",
        *measures,
        "Total population: mid 2022",
        "Dependent Children aged 0-15: mid 2022",
        "Older population aged 60 and over: mid 2022",
        "Working age population 18-66 (for use with Employment Deprivation Domain): mid 2022",
    ]


def iod2019_header() -> list[str]:
    """The 57 headers of IoD2019 File 7 (the last one ends in a space, as published)."""
    return [
        "LSOA code (2011)",
        "LSOA name (2011)",
        "Local Authority District code (2019)",
        "Local Authority District name (2019)",
        *_iod_measure_headers(),
        "Total population: mid 2015 (excluding prisoners)",
        "Dependent Children aged 0-15: mid 2015 (excluding prisoners)",
        "Population aged 16-59: mid 2015 (excluding prisoners)",
        "Older population aged 60 and over: mid 2015 (excluding prisoners)",
        "Working age population 18-59/64: for use with Employment Deprivation Domain (excluding"
        " prisoners) ",
    ]


LOOKUP_LSOA11_HEADER = [
    "LSOA11CD",
    "LSOA11NM",
    "LSOA21CD",
    "LSOA21NM",
    "CHGIND",
    "LAD22CD",
    "LAD22NM",
    "LAD22NMW",
    "ObjectId",
]
LOOKUP_LSOA21_HEADER = [
    "LSOA21CD",
    "LSOA21NM",
    "SICBL23CD",
    "SICBL23CDH",
    "SICBL23NM",
    "ICB23CD",
    "ICB23CDH",
    "ICB23NM",
    "LAD23CD",
    "LAD23NM",
    "ObjectId",
]

_AGE_BAND_LABELS = [f"Aged {lo} to {lo + 4} years" for lo in range(5, 85, 5)]
CENSUS_HEADERS: dict[str, list[str]] = {
    "ts007a": ["Age: Total", "Age: Aged 4 years and under"]
    + [f"Age: {label}" for label in _AGE_BAND_LABELS]
    + ["Age: Aged 85 years and over"],
    # TS037 carries the irregular spacing after a colon seen in Nomis bulk headers
    "ts037": [
        "General health: Total: All usual residents",
        "General health: Very good health",
        "General health: Good health",
        "General health: Fair health",
        "General health: Bad health",
        "General health:  Very bad health",
    ],
    "ts038": [
        "Disability: Total: All usual residents",
        "Disability: Disabled under the Equality Act",
        "Disability: Disabled under the Equality Act: Day-to-day activities limited a lot",
        "Disability: Disabled under the Equality Act: Day-to-day activities limited a little",
        "Disability: Not disabled under the Equality Act",
        "Disability: Not disabled under the Equality Act: Has long term physical or mental"
        " health condition but day-to-day activities are not limited",
        "Disability: Not disabled under the Equality Act: No long term physical or mental health"
        " conditions",
    ],
    "ts021": [
        "Ethnic group: Total: All usual residents",
        "Ethnic group: Asian, Asian British or Asian Welsh",
        "Ethnic group: Asian, Asian British or Asian Welsh: Bangladeshi",
        "Ethnic group: Asian, Asian British or Asian Welsh: Chinese",
        "Ethnic group: Asian, Asian British or Asian Welsh: Indian",
        "Ethnic group: Asian, Asian British or Asian Welsh: Pakistani",
        "Ethnic group: Asian, Asian British or Asian Welsh: Other Asian",
        "Ethnic group: Black, Black British, Black Welsh, Caribbean or African",
        "Ethnic group: Black, Black British, Black Welsh, Caribbean or African: African",
        "Ethnic group: Black, Black British, Black Welsh, Caribbean or African: Caribbean",
        "Ethnic group: Black, Black British, Black Welsh, Caribbean or African: Other Black",
        "Ethnic group: Mixed or Multiple ethnic groups",
        "Ethnic group: Mixed or Multiple ethnic groups: White and Asian",
        "Ethnic group: Mixed or Multiple ethnic groups: White and Black African",
        "Ethnic group: Mixed or Multiple ethnic groups: White and Black Caribbean",
        "Ethnic group: Mixed or Multiple ethnic groups: Other Mixed or Multiple ethnic groups",
        "Ethnic group: White",
        "Ethnic group: White: English, Welsh, Scottish, Northern Irish or British",
        "Ethnic group: White: Irish",
        "Ethnic group: White: Gypsy or Irish Traveller",
        "Ethnic group: White: Roma",
        "Ethnic group: White: Other White",
        "Ethnic group: Other ethnic group",
        "Ethnic group: Other ethnic group: Arab",
        "Ethnic group: Other ethnic group: Any other ethnic group",
    ],
    "ts011": [
        f"Household deprivation: {label}; measures: Value"
        for label in [
            "Total: All households",
            "Household is not deprived in any dimension",
            "Household is deprived in one dimension",
            "Household is deprived in two dimensions",
            "Household is deprived in three dimensions",
            "Household is deprived in four dimensions",
        ]
    ],
    "ts054": [
        f"Tenure of household: {label}; measures: Value"
        for label in [
            "Total: All households",
            "Owned",
            "Owned: Owns outright",
            "Owned: Owns with a mortgage or loan",
            "Shared ownership",
            "Shared ownership: Shared ownership",
            "Social rented",
            "Social rented: Rents from council or Local Authority",
            "Social rented: Other social rented",
            "Private rented",
            "Private rented: Private landlord or letting agency",
            "Private rented: Other private rented",
            "Lives rent free",
        ]
    ],
}

_NOT_ENGLISH = "Main language is not English (English or Welsh in Wales)"
#: Core20PLUS5 PLUS-group tables (issue 12), Nomis headers as published
CORE20PLUS_HEADERS: dict[str, list[str]] = {
    "ts039": [
        f"Provision of unpaid care: {label}; measures: Value"
        for label in [
            "Total: All usual residents aged 5 and over",
            "Provides no unpaid care",
            "Provides 19 hours or less unpaid care a week",
            "Provides 20 to 49 hours unpaid care a week",
            "Provides 50 or more hours unpaid care a week",
        ]
    ],
    "ts029": [
        f"Proficiency in English language: {label}; measures: Value"
        for label in [
            "Total: All usual residents aged 3 years and over",
            "Main language is English (English or Welsh in Wales)",
            _NOT_ENGLISH,
            f"{_NOT_ENGLISH}: Can speak English very well",
            f"{_NOT_ENGLISH}: Can speak English well",
            f"{_NOT_ENGLISH}: Cannot speak English well",
            f"{_NOT_ENGLISH}: Cannot speak English",
        ]
    ],
    "ts045": [
        f"Number of cars or vans: {label}; measures: Value"
        for label in [
            "Total: All households",
            "No cars or vans in household",
            "1 car or van in household",
            "2 cars or vans in household",
            "3 or more cars or vans in household",
        ]
    ],
    "ts003": [
        f"Household composition: {label}; measures: Value"
        for label in [
            "Total",
            "One person household",
            "One person household: Aged 66 years and over",
            "One person household: Other",
            "Single family household",
            "Other household types",
        ]
    ],
}

WORKFORCE_SOURCES = np.array(
    [
        "Fully provided",
        "Includes FTE Estimates",
        "Fully Estimated",
        "No data provided",
        "No valid or current data",
    ],
    dtype=object,
)

README_TEXT = """SYNTHETIC DEMONSTRATION DATA - NOT REAL
=====================================

Every file in this folder was generated by pophealth.demo.write_demo_dataset
(seed {seed}, scale "{scale}"). The people, practices, PCNs, sub-ICB locations, ICBs, local
authorities and small areas are fictional: codes (practices Y9nnnn, PCNs U9nnnn, LSOAs
E011nnnnn, ICB {icb_code}) and names ("DEMO", "Demo...") do not refer to real organisations or
places, and the numbers describe no real population. Boundaries are hexagons.

The files copy the layouts of the official publications (NHS England patients registered at a
GP practice, GP workforce and payments; ODS ePCN; MHCLG English Indices of Deprivation 2019 and
2025; ONS LSOA lookups, boundaries and Census 2021 Nomis tables) so that the pipeline can be
exercised end to end without downloading anything. Do not use them for any real analysis.
"""


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------


def _write_csv(frame: pd.DataFrame, path: Path, **kwargs: object) -> Path:
    frame.to_csv(path, index=False, lineterminator=kwargs.pop("lineterminator", "\n"), **kwargs)
    return path


def _practice_frame(world: DemoWorld) -> pd.DataFrame:
    """Practices joined to their PCN, sub-ICB location, ICB and region codes and names."""
    prac = world.practices
    sicbl = world.areas["sicbl"]
    icb = world.areas["icb"]
    region = world.areas["region"]
    pcns = world.pcns.set_index("pcn")
    out = pd.DataFrame(
        {
            "practice_code": prac["practice_code"],
            "practice_name": prac["practice_name"],
            "postcode": prac["postcode"],
            "sicbl_code": sicbl["sicbl_code"].to_numpy()[prac["sicbl"]],
            "sicbl_ods": sicbl["sicbl_ods"].to_numpy()[prac["sicbl"]],
            "sicbl_name": sicbl["sicbl_name"].to_numpy()[prac["sicbl"]],
            "icb_code": icb["icb_code"].to_numpy()[prac["icb"]],
            "icb_ods": icb["icb_ods"].to_numpy()[prac["icb"]],
            "icb_name": icb["icb_name"].to_numpy()[prac["icb"]],
            "region_code": region["region_code"].to_numpy()[prac["region"]],
            "region_ods": region["region_ods"].to_numpy()[prac["region"]],
            "region_name": region["region_name"].to_numpy()[prac["region"]],
        }
    )
    aligned = prac["pcn"].to_numpy() >= 0
    pcn_idx = np.where(aligned, prac["pcn"].to_numpy(), 0)
    out["pcn_code"] = np.where(aligned, pcns["pcn_code"].to_numpy()[pcn_idx], "U")
    out["pcn_name"] = np.where(aligned, pcns["pcn_name"].to_numpy()[pcn_idx], "Unallocated")
    return out


def _write_registrations(
    world: DemoWorld, out_dir: Path, extract_date: str = EXTRACT_DATE
) -> dict[str, Path]:
    prac = _practice_frame(world)
    reg = world.registrations
    written = {}
    lsoa_rows = pd.DataFrame(
        {
            "PUBLICATION": PUBLICATION,
            "EXTRACT_DATE": extract_date,
            "PRACTICE_CODE": reg["practice_code"],
            "PRACTICE_NAME": prac["practice_name"].to_numpy()[reg["practice"]],
            "LSOA_CODE": reg["lsoa_code"],
            "SEX": "ALL",
            "NUMBER_OF_PATIENTS": reg["patients"].astype(np.int64),
        }
    )
    written["registrations_lsoa"] = _write_csv(
        lsoa_rows, out_dir / FILE_NAMES["registrations_lsoa"]
    )

    totals = world.practices["registered"].to_numpy()
    practice_rows = pd.DataFrame(
        {
            "PUBLICATION": PUBLICATION,
            "EXTRACT_DATE": extract_date,
            "TYPE": "GP",
            "SUB_ICB_LOCATION_CODE": prac["sicbl_ods"],
            "ONS_SUB_ICB_LOCATION_CODE": prac["sicbl_code"],
            "CODE": prac["practice_code"],
            "POSTCODE": prac["postcode"],
            "SEX": "ALL",
            "AGE": "ALL",
            "NUMBER_OF_PATIENTS": totals,
        }
    )
    written["practice_totals"] = _write_csv(practice_rows, out_dir / FILE_NAMES["practice_totals"])

    single = world.single_age  # (practice, sex[male, female], age 0..95)
    # quinary: 0_4 … 90_94 from single years, then 95+ and ALL
    quin = np.concatenate(
        [single[:, :, :95].reshape(len(prac), 2, 19, 5).sum(axis=3), single[:, :, 95:96]], axis=2
    )
    quin = np.concatenate([quin, quin.sum(axis=2, keepdims=True)], axis=2)  # + ALL
    quin = np.concatenate([quin.sum(axis=1, keepdims=True), quin[:, ::-1]], axis=1)  # ALL, F, M
    band_labels = [f"{lo}_{lo + 4}" for lo in range(0, 95, 5)] + ["95+", "ALL"]
    sex_labels = ["ALL", "FEMALE", "MALE"]
    blocks = []
    for org_type, key, codes_col, ons_col in [
        ("COMM_REGION", "region", "region_ods", "region_code"),
        ("ICB", "icb", "icb_ods", "icb_code"),
        ("SUB_ICB_LOCATION", "sicbl", "sicbl_ods", "sicbl_code"),
    ]:
        groups = world.practices[key].to_numpy()
        uniq, inverse = np.unique(groups, return_inverse=True)
        agg = np.zeros((len(uniq), *quin.shape[1:]), dtype=np.int64)
        np.add.at(agg, inverse, quin)
        first = pd.Series(np.arange(len(prac))).groupby(inverse).first().to_numpy()
        blocks.append(
            (
                org_type,
                prac[codes_col].to_numpy()[first],
                prac[ons_col].to_numpy()[first],
                np.full(len(uniq), "", dtype=object),
                agg,
            )
        )
    blocks.append(
        (
            "GP",
            prac["practice_code"].to_numpy(),
            prac["sicbl_code"].to_numpy(),
            prac["postcode"].to_numpy(),
            quin,
        )
    )
    frames = []
    n_cells = len(sex_labels) * len(band_labels)
    for org_type, codes, ons, postcodes, values in blocks:
        frames.append(
            pd.DataFrame(
                {
                    "PUBLICATION": PUBLICATION,
                    "EXTRACT_DATE": extract_date,
                    "ORG_TYPE": org_type,
                    "ORG_CODE": np.repeat(codes, n_cells),
                    "ONS_CODE": np.repeat(ons, n_cells),
                    "POSTCODE": np.repeat(postcodes, n_cells),
                    "SEX": np.tile(np.repeat(sex_labels, len(band_labels)), len(codes)),
                    "AGE_GROUP_5": np.tile(band_labels, len(codes) * len(sex_labels)),
                    "NUMBER_OF_PATIENTS": values.reshape(-1),
                }
            )
        )
    quinary = pd.concat(frames, ignore_index=True)
    # SEX=ALL appears only as the list total (AGE_GROUP_5=ALL); bands are by MALE/FEMALE
    quinary = quinary[(quinary["SEX"] != "ALL") | (quinary["AGE_GROUP_5"] == "ALL")]
    written["practice_age_bands"] = _write_csv(quinary, out_dir / FILE_NAMES["practice_age_bands"])

    age_labels = [str(a) for a in range(95)] + ["95+", "ALL"]
    for sex_index, sex in [(0, "male"), (1, "female")]:
        values = np.concatenate(
            [single[:, sex_index, :], single[:, sex_index, :].sum(axis=1, keepdims=True)], axis=1
        )
        frame = pd.DataFrame(
            {
                "EXTRACT_DATE": extract_date,
                "SUB_ICB_LOCATION_CODE": np.repeat(prac["sicbl_ods"].to_numpy(), len(age_labels)),
                "ONS_SUB_ICB_LOCATION_CODE": np.repeat(
                    prac["sicbl_code"].to_numpy(), len(age_labels)
                ),
                "ORG_CODE": np.repeat(prac["practice_code"].to_numpy(), len(age_labels)),
                "POSTCODE": np.repeat(prac["postcode"].to_numpy(), len(age_labels)),
                "SEX": sex.upper(),
                "AGE": np.tile(age_labels, len(prac)),
                "NUMBER_OF_PATIENTS": values.reshape(-1),
            }
        )
        key = f"practice_single_age_{sex}"
        written[key] = _write_csv(frame, out_dir / FILE_NAMES[key])

    supplier = np.where(np.arange(len(prac)) % 3 == 2, "TPP", "EMIS")
    map_rows = pd.DataFrame(
        {
            "PUBLICATION": PUBLICATION,
            "EXTRACT_DATE": extract_date,
            "PRACTICE_CODE": prac["practice_code"],
            "PRACTICE_NAME": prac["practice_name"],
            "PRACTICE_POSTCODE": prac["postcode"],
            "PCN_CODE": prac["pcn_code"],
            "PCN_NAME": prac["pcn_name"],
            "ONS_SUB_ICB_LOCATION_CODE": prac["sicbl_code"],
            "SUB_ICB_LOCATION_CODE": prac["sicbl_ods"],
            "SUB_ICB_LOCATION_NAME": prac["sicbl_name"],
            "ONS_ICB_CODE": prac["icb_code"],
            "ICB_CODE": prac["icb_ods"],
            "ICB_NAME": prac["icb_name"],
            "ONS_COMM_REGION_CODE": prac["region_code"],
            "COMM_REGION_CODE": prac["region_ods"],
            "COMM_REGION_NAME": prac["region_name"],
            "SUPPLIER_NAME": supplier,
        }
    )
    written["practice_map"] = _write_csv(map_rows, out_dir / FILE_NAMES["practice_map"])
    return written


def _deterministic_xlsx(workbook: openpyxl.Workbook, path: Path) -> Path:
    """Save a workbook with fixed document and zip timestamps, so output is byte-identical."""
    fixed = dt.datetime(2025, 10, 1)
    workbook.properties.created = fixed
    workbook.properties.modified = fixed
    workbook.properties.creator = "pophealth.demo (synthetic)"
    raw = io.BytesIO()
    workbook.save(raw)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                # openpyxl stamps "modified" with the save time whatever the property says
                text = data.decode("utf-8")
                start = text.find("<dcterms:modified")
                if start >= 0:
                    end = text.find("</dcterms:modified>", start)
                    open_end = text.find(">", start) + 1
                    text = text[:open_end] + "2025-10-01T00:00:00Z" + text[end:]
                data = text.encode("utf-8")
            entry = zipfile.ZipInfo(info.filename, date_time=(2025, 10, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, data)
    path.write_bytes(out.getvalue())
    return path


def _write_epcn(world: DemoWorld, out_dir: Path, *others: DemoWorld) -> Path:
    """The ePCN workbook of ``world``'s PCNs and memberships (then those of ``others``)."""
    wb = openpyxl.Workbook(write_only=True)
    details = wb.create_sheet("PCNDetails")
    details.append(EPCN_DETAILS_HEADER)
    partners = wb.create_sheet("PCN Core Partner Details")
    partners.append(EPCN_PARTNER_HEADER)
    for one in (world, *others):
        _epcn_rows(one, details, partners)
    return _deterministic_xlsx(wb, out_dir / FILE_NAMES["epcn"])


def _epcn_rows(world: DemoWorld, details, partners) -> None:
    prac = _practice_frame(world)
    sicbl = world.areas["sicbl"]
    pcns = world.pcns
    for row in pcns.itertuples(index=False):
        lad = int(row.lad)
        details.append(
            [
                row.pcn_code,
                row.pcn_name,
                sicbl.loc[row.sicbl, "sicbl_ods"],
                sicbl.loc[row.sicbl, "sicbl_name"].upper(),
                "20190701",
                row.close_date,
                "DEMO HEALTH CENTRE",
                f"{int(row.pcn) % 97 + 1} DEMO STREET",
                "",
                "DEMOTON" if world.config.name == "ics" else f"DEMO DISTRICT {lad + 1:03d}",
                "",
                f"DM{lad + 1} {int(row.pcn) % 9 + 1}ZZ",
            ]
        )
    pcn_sicbl = pcns.set_index("pcn")["sicbl"]
    pcn_by_index = pcns.set_index("pcn")
    prac_sicbl = world.practices["sicbl"].to_numpy()
    for row in world.memberships.itertuples(index=False):
        p = int(row.practice)
        pcn_s = int(pcn_sicbl.loc[row.pcn])
        partners.append(
            [
                prac.at[p, "practice_code"],
                prac.at[p, "practice_name"],
                prac.at[p, "sicbl_ods"],
                prac.at[p, "sicbl_name"].upper(),
                pcn_by_index.at[row.pcn, "pcn_code"],
                pcn_by_index.at[row.pcn, "pcn_name"],
                sicbl.at[pcn_s, "sicbl_ods"],
                sicbl.at[pcn_s, "sicbl_name"].upper(),
                row.start_date,
                row.end_date,
                bool(prac_sicbl[p] == pcn_s),
            ]
        )


def _write_workforce(
    world: DemoWorld, out_dir: Path, rng: np.random.Generator, month: str = WORKFORCE_MONTH
) -> Path:
    prac = _practice_frame(world)
    p = world.practices
    n = len(p)
    single = world.single_age
    cols: dict[str, object] = {
        "PRAC_CODE": prac["practice_code"],
        "PRAC_NAME": prac["practice_name"],
        "PCN_CODE": np.where(prac["pcn_code"] == "U", "Unaligned", prac["pcn_code"]),
        "PCN_NAME": np.where(prac["pcn_code"] == "U", "Unaligned", prac["pcn_name"]),
        "SUB_ICB_CODE": prac["sicbl_ods"],
        "SUB_ICB_NAME": prac["sicbl_name"],
        "ICB_CODE": prac["icb_ods"],
        "ICB_NAME": prac["icb_name"],
        "REGION_CODE": prac["region_ods"],
        "REGION_NAME": prac["region_name"].str.upper(),
        "TOTAL_PATIENTS": p["registered"],
        "TOTAL_MALE": p["male"],
        "TOTAL_FEMALE": p["female"],
        "TOTAL_UNKNOWN_GENDER": 0,
    }
    bands = [
        ("0TO4", 0, 5),
        ("5TO14", 5, 15),
        ("15TO44", 15, 45),
        ("45TO64", 45, 65),
        ("65TO74", 65, 75),
        ("75TO84", 75, 85),
        ("85PLUS", 85, 96),
    ]
    for sex_index, sex in [(0, "MALE"), (1, "FEMALE")]:
        for label, lo, hi in bands:
            cols[f"{sex}_PATIENTS_{label}"] = single[:, sex_index, lo:hi].sum(axis=1)

    sources = {}
    for group in ["GP", "NURSE", "DPC", "ADMIN"]:
        draw = rng.choice(len(WORKFORCE_SOURCES), size=n, p=[0.87, 0.08, 0.03, 0.012, 0.008])
        sources[group] = draw
        cols[f"{group}_SOURCE"] = WORKFORCE_SOURCES[draw]
    if world.config.name == "ics":
        # make sure the small demo shows the "no data" case (NA values) at least once
        sources["GP"][n // 2] = 3
        cols["GP_SOURCE"] = WORKFORCE_SOURCES[sources["GP"]]

    gp = p["gp_fte"].to_numpy()
    trainee = gp * p["trainee_share"].to_numpy()
    locum = gp * p["locum_share"].to_numpy()
    permanent = gp - trainee - locum
    hc_perm = np.ceil(permanent / 0.74)
    hc_trainee = np.ceil(trainee / 0.9)
    hc_locum = np.ceil(locum / 0.25)
    values = {
        "TOTAL_GP_HC": hc_perm + hc_trainee + hc_locum,
        "TOTAL_GP_EXTG_HC": hc_perm + hc_locum,
        "TOTAL_GP_EXL_HC": hc_perm + hc_trainee,
        "TOTAL_GP_EXTGL_HC": hc_perm,
        "TOTAL_GP_FTE": gp,
        "TOTAL_GP_EXTG_FTE": gp - trainee,
        "TOTAL_GP_EXL_FTE": gp - locum,
        "TOTAL_GP_EXTGL_FTE": permanent,
        "TOTAL_NURSES_HC": np.ceil(p["nurse_fte"].to_numpy() / 0.7),
        "TOTAL_NURSES_FTE": p["nurse_fte"].to_numpy(),
        "TOTAL_DPC_HC": np.ceil(p["dpc_fte"].to_numpy() / 0.72),
        "TOTAL_DPC_FTE": p["dpc_fte"].to_numpy(),
        "TOTAL_ADMIN_HC": np.ceil(p["admin_fte"].to_numpy() / 0.75),
        "TOTAL_ADMIN_FTE": p["admin_fte"].to_numpy(),
    }
    values = _official_workforce_order(
        {**values, **_workforce_roles(values, permanent, trainee, locum, p, rng)}
    )
    group_of = {"GP": "GP", "NURSES": "NURSE", "DPC": "DPC", "ADMIN": "ADMIN", "N": "NURSE"}
    for name, vals in values.items():
        group = group_of[name.split("_")[1]]
        missing = sources[group] >= 3
        text = np.where(
            name.endswith("_HC"), vals.astype(np.int64).astype(str), np.round(vals, 6).astype(str)
        )
        cols[name] = np.where(missing, "NA", text)
    frame = pd.DataFrame(cols)
    return _write_csv(frame, out_dir / FILE_NAMES["workforce"].replace(WORKFORCE_MONTH, month))


# issue13: role splits of the detailed workforce file (each group's roles add to its total)
_GP_PERMANENT_ROLES = ("GP_SEN_PTNR", "GP_PTNR_PROV", "GP_SAL_BY_PRAC", "GP_SAL_BY_OTH", "GP_RET")
_GP_TRAINEE_ROLES = ("GP_TRN_GR_ST1", "GP_TRN_GR_ST2", "GP_TRN_GR_ST3", "GP_TRN_GR_ST4")
_GP_TRAINEE_ROLES += ("GP_TRN_GR_OTH", "GP_TRN_GR_F1_2")
_GP_LOCUM_ROLES = ("GP_LOCUM_VAC", "GP_LOCUM_ABS", "GP_LOCUM_OTH")
_SPLIT_WEIGHTS = {
    "permanent": (3, 8, 10, 1, 0.5),
    "trainee": (2, 2, 5, 0.3, 0.3, 1.5),
    "locum": (3, 2, 1),
    "nurse": (12, 3, 1, 0.5, 0.5, 0.5, 0.3, 0.2, 0.5),
    "dpc": (0.2, 0.5, 1, 0.5, 0.2, 0.2, 0.3, 2, 1.5, 6, 0.2, 1.5, 3, 1, 0.3, 1, 0.5, 0.3, 0.3)
    + (1, 0.3, 1, 1, 0.2, 1.5, 0.5, 0.2, 0.4, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 0.5),
    "admin": (3, 1, 3, 12, 2, 0.5, 0.3, 2, 0.5),
}


def _official_workforce_order(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Columns as the publisher orders them: per staff group, role headcounts then role FTEs."""
    from pophealth.sources.workforce import ROLES

    rank = {}
    for group_index, group in enumerate(("gp", "nurse", "dpc", "admin")):
        stems = [role.stem for role in ROLES if role.group == group]
        for measure_index, measure in enumerate(("HC", "FTE")):
            for role_index, stem in enumerate(stems):
                rank[f"TOTAL_{stem}_{measure}"] = (group_index, measure_index, role_index)
    return {name: values[name] for name in sorted(values, key=rank.__getitem__)}


def _split(total: np.ndarray, weights, rng: np.random.Generator) -> np.ndarray:
    """Split each practice's total into parts drawn around the given weights (rows add up)."""
    shares = rng.dirichlet(np.asarray(weights, dtype=float) * 4, size=len(total))
    return total[:, None] * shares


def _workforce_roles(
    values: dict, permanent, trainee, locum, p: pd.DataFrame, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """FTE and headcount of every role of the detailed file, consistent with the group totals."""
    from pophealth.sources.workforce import ROLES

    groups = {role.group: [] for role in ROLES}
    for role in ROLES:
        groups[role.group].append(role.stem)
    parts: dict[str, np.ndarray] = {}
    for stems, total, key in (
        (_GP_PERMANENT_ROLES, permanent, "permanent"),
        (_GP_TRAINEE_ROLES, trainee, "trainee"),
        (_GP_LOCUM_ROLES, locum, "locum"),
        (groups["nurse"][1:], p["nurse_fte"].to_numpy(), "nurse"),
        (
            [s for s in groups["dpc"][1:] if s != "DPC_APPRENTICE"],
            p["dpc_fte"].to_numpy(),
            "dpc",
        ),
        (groups["admin"][1:], p["admin_fte"].to_numpy(), "admin"),
    ):
        split = _split(np.asarray(total, dtype=float), _SPLIT_WEIGHTS[key], rng)
        parts.update({stem: split[:, i] for i, stem in enumerate(stems)})
    parts["DPC_APPRENTICE"] = sum(parts[s] for s in groups["dpc"] if s.startswith("DPC_APP_"))
    out: dict[str, np.ndarray] = {}
    for role in ROLES:
        if role.stem not in parts:
            continue
        out[f"TOTAL_{role.stem}_HC"] = np.ceil(parts[role.stem] / 0.7)
        out[f"TOTAL_{role.stem}_FTE"] = parts[role.stem]
    return out


_PCN_ROLES = (
    # STAFF_GROUP, STAFF_ROLE, DETAILED_STAFF_ROLE, share of a PCN's FTE
    ("Directors", "Medical Clinical Director (GP)", "Clinical Director", 0.03),
    ("Other GPs", "Salaried GPs", "Salaried GP", 0.06),
    ("Other Nurses", "Advanced Nurse Practitioners", "Advanced Nurse Practitioner", 0.05),
    ("Other Nurses", "Other Nurses", "Other Nurse", 0.02),
    ("Other Direct Patient Care staff", "Pharmacists", "Clinical Pharmacist", 0.18),
    ("Other Direct Patient Care staff", "Care Coordinators", "Care Coordinator", 0.16),
    (
        "Other Direct Patient Care staff",
        "Social Prescribing Link Workers (Non-Mental Health Practitioners)",
        "Social Prescribing Link Worker",
        0.08,
    ),
    ("Other Direct Patient Care staff", "Pharmacy Technicians", "Pharmacy Technician", 0.07),
    ("Other Direct Patient Care staff", "Physician Associates", "Physician Associate", 0.05),
    (
        "Other Direct Patient Care staff",
        "Physiotherapists",
        "First Contact Physiotherapist",
        0.05,
    ),
    ("Other Direct Patient Care staff", "Paramedics", "Paramedic", 0.04),
    (
        "Other Direct Patient Care staff",
        "Mental Health and Wellbeing Practitioners (Mental Health Practitioners)",
        "Mental Health Practitioner",
        0.05,
    ),
    (
        "Other Direct Patient Care staff",
        "Health and Wellbeing Coaches",
        "Health and Wellbeing Coach",
        0.04,
    ),
    ("Other Direct Patient Care staff", "Nursing Associates", "Nursing Associate", 0.02),
    ("Other Admin/Non-clinical staff", "Managers", "Manager", 0.07),
    (
        "Other Admin/Non-clinical staff",
        "Digital and Transformation Leads",
        "Digital and Transformation Lead",
        0.03,
    ),
)
PCN_WORKFORCE_HEADER = [
    "Data_source",
    "CENSUS_YEAR",
    "CENSUS_MONTH",
    "PCN_CODE",
    "PCN_NAME",
    "SUB_ICB_CODE",
    "SUB_ICB_NAME",
    "ICB_CODE",
    "ICB_NAME",
    "COMM_REGION_CODE",
    "COMM_REGION_NAME",
    "STAFF_GROUP",
    "STAFF_ROLE",
    "DETAILED_STAFF_ROLE",
    "FTE",
    "UNIQUE_IDENTIFIER",
]


def _write_pcn_workforce(
    world: DemoWorld,
    out_dir: Path,
    rng: np.random.Generator,
    first_id: int = 100_000,
    month: str = PCN_WORKFORCE_MONTH,
) -> Path:
    """PCN workforce individual-level CSV: staff (a row per person and role) and contracts.

    Contracted services carry FTE only. Every PCN but one has rows (the small demo shows a PCN
    that made no return). ``month`` (``"October 2025"``) names the census month and the file.
    """
    prac = _practice_frame(world).assign(patients=world.practices["registered"].to_numpy())
    prac = prac[prac["pcn_code"] != "U"]
    pcns = prac.groupby("pcn_code", sort=True).agg(
        pcn_name=("pcn_name", "first"),
        sicbl_ods=("sicbl_ods", "first"),
        sicbl_name=("sicbl_name", "first"),
        icb_ods=("icb_ods", "first"),
        icb_name=("icb_name", "first"),
        region_ods=("region_ods", "first"),
        region_name=("region_name", "first"),
        patients=("patients", "sum"),
    )
    census = pd.Timestamp(f"1 {month}")
    year, month_number = census.year, census.month
    # about 7 PCN FTE per 10,000 patients nationally, varying between PCNs
    target = pcns["patients"].to_numpy() / 10_000 * 7.0 * rng.lognormal(0, 0.35, len(pcns))
    rows = []
    for (code, pcn), total in zip(pcns.iterrows(), target, strict=True):
        if world.config.name == "ics" and code == pcns.index[-1]:
            continue  # no workforce return from this PCN
        for group, role, detailed, share in _PCN_ROLES:
            fte = total * share * rng.lognormal(0, 0.3)
            if fte < 0.2:
                continue
            contracted = rng.random() < 0.06
            people = 1 if contracted else int(np.ceil(fte / 0.85))
            each = np.round(np.full(people, fte / people), 4)
            for value in each:
                rows.append(
                    [
                        "NWRS Contracted Services" if contracted else "NWRS Staff",
                        year,
                        month_number,
                        code,
                        pcn["pcn_name"],
                        pcn["sicbl_ods"],
                        pcn["sicbl_name"],
                        pcn["icb_ods"],
                        pcn["icb_name"],
                        pcn["region_ods"],
                        pcn["region_name"],
                        group,
                        role,
                        detailed,
                        value,
                        "" if contracted else None,
                    ]
                )
    frame = pd.DataFrame(rows, columns=PCN_WORKFORCE_HEADER)
    staff = frame["UNIQUE_IDENTIFIER"].isna()
    ids = rng.permutation(np.arange(first_id, first_id + int(staff.sum())))
    frame.loc[staff, "UNIQUE_IDENTIFIER"] = ids.astype(str)
    name = FILE_NAMES["pcn_workforce"].replace(PCN_WORKFORCE_MONTH, month)
    return _write_csv(frame, out_dir / name)


def _write_payments(world: DemoWorld, out_dir: Path, rng: np.random.Generator) -> Path:
    prac = _practice_frame(world)
    p = world.practices
    n = len(p)
    # payments are annual, "last known figure" a few months before the October extract
    registered = np.round(p["registered"].to_numpy() * rng.normal(0.995, 0.008, n) * 4) / 4
    weighted = np.round(registered * p["weighted"].to_numpy() / p["registered"].to_numpy(), 2)
    global_sum = np.round(weighted * 112.50, 2)
    qof = np.round(registered * rng.uniform(12.0, 20.0, n), 2)
    vaccs = np.round(registered * rng.uniform(0.4, 1.4, n), 2)
    flu = np.round(registered * rng.uniform(1.0, 2.2, n), 2)
    premises = np.round(registered * rng.uniform(5.0, 25.0, n), 2)
    it = np.round(registered * rng.uniform(0.5, 1.5, n), 2)
    total = np.round(global_sum + qof + vaccs + flu + premises + it, 2)
    deductions = np.round(-total * rng.uniform(0.08, 0.13, n), 2)
    cols: dict[str, object] = {h: 0 for h in PAYMENTS_HEADER}
    cols.update(
        {
            "NHS England (Region) code": prac["region_ods"],
            "NHS England (Region) Name": prac["region_name"].str.upper() + " COMM REGION",
            "CCG Code": prac["sicbl_ods"],
            "Sub ICB NAME": prac["sicbl_name"].str.upper(),
            # the publisher's labels are shifted: "Code" holds PCN codes, "CCG NAME" PCN names
            "Code": prac["pcn_code"],
            "CCG NAME": prac["pcn_name"],
            "Practice Code": prac["practice_code"],
            "Practice Name": prac["practice_name"],
            "Practice Address": "DEMO STREET  DEMOTON ",
            "Practice Postcode": prac["postcode"],
            "Practice Open Date": np.where(rng.random(n) < 0.7, "01/04/1974", "01/10/2004"),
            "Practice Close Date": "",
            "Contract Type": rng.choice(
                np.array(["GMS", "PMS", "APMS"], dtype=object), n, p=[0.7, 0.26, 0.04]
            ),
            "Dispensing Practice": np.where(rng.random(n) < 0.1, "Yes", "No"),
            "Practice type": "GP practice",
            "Practice Rurality": np.where(p["z"].to_numpy() > -0.5, "Urban", "Rural"),
            "Atypical characteristics": "",
            "Number of Registered Patients (Last Known Figure)": registered,
            "Number of Weighted Patients (Last Known Figure)": weighted,
            "Average payments per registered patient": np.round(total / registered, 2),
            "Average payments per weighted patient": np.round(total / weighted, 2),
            "Global Sum": global_sum,
            "Total QOF Payments": qof,
            "Childhood Vaccination and Immunisation Scheme": vaccs,
            "Influenza and Pneumococcal Immunisations": flu,
            "Premises Payments": premises,
            "Information Management and Technology": it,
            "Total NHS Payments to General Practice": total,
            "Deductions for Pensions, Levies and Prescription Charge Income": deductions,
        }
    )
    # the several "Total …" and "Average …" variants: PCN and covid payments are not modelled
    for header in PAYMENTS_HEADER:
        lowered = header.lower()
        if header.startswith("Total NHS Payments") and header != PAYMENTS_HEADER[54]:
            cols[header] = np.round(total + deductions, 2) if "minus" in lowered else total
        elif header.startswith("Average payments per registered patient including"):
            cols[header] = np.round(total / registered, 2)
        elif header.startswith("Average payments per weighted patient including"):
            cols[header] = np.round(total / weighted, 2)
    frame = pd.DataFrame(cols)[PAYMENTS_HEADER]
    return _write_csv(
        frame,
        out_dir / FILE_NAMES["payments"],
        encoding="utf-8-sig",
        lineterminator="\r\n",
    )


def _lsoa_names(world: DemoWorld) -> np.ndarray:
    lads = world.areas["lad"]["lad_name"].to_numpy()[world.lsoa["lad"].to_numpy()]
    return np.array(
        [
            f"{lad} {m:03d}{letter}"
            for lad, m, letter in zip(
                lads, world.lsoa["msoa_no"], world.lsoa["lsoa_letter"], strict=True
            )
        ],
        dtype=object,
    )


def _iod_frame(
    ids: dict[str, object], z: np.ndarray, n_national: int, exact: bool, rng: np.random.Generator
) -> dict[str, object]:
    cols = dict(ids)
    headers = _iod_measure_headers()
    scores = _model.domain_scores(z, rng)
    for i, (key, _, _) in enumerate(IOD_MEASURES):
        latent, score = scores[key]
        rank, decile = _model.national_rank_decile(latent, n_national, exact)
        cols[headers[3 * i]] = score
        cols[headers[3 * i + 1]] = rank
        cols[headers[3 * i + 2]] = decile
    return cols


def _lsoa11_table(world: DemoWorld, rng: np.random.Generator) -> pd.DataFrame:
    """LSOA 2011 -> 2021 best-fit table with U, S (split), M (merged) and X (complex) changes."""
    lsoa = world.lsoa
    n = len(lsoa)
    names21 = _lsoa_names(world)
    codes21 = lsoa["lsoa_code"].to_numpy()
    lad = lsoa["lad"].to_numpy()
    msoa = lsoa["msoa_no"].to_numpy()
    # S: neighbouring pairs within the same LAD and MSOA came from one 2011 LSOA
    pair_ok = np.flatnonzero((lad[:-1] == lad[1:]) & (msoa[:-1] == msoa[1:]))
    n_pairs = max(3, int(0.027 * n))
    starts = rng.permutation(pair_ok)
    chosen: list[int] = []
    used = np.zeros(n, dtype=bool)
    for s in starts:
        if len(chosen) == n_pairs:
            break
        if not used[s] and not used[s + 1]:
            chosen.append(int(s))
            used[s] = used[s + 1] = True
    free = rng.permutation(np.flatnonzero(~used))
    n_merge = max(2, int(0.0035 * n))
    n_complex = 2 if world.config.name == "ics" else 9
    merged, complex_ = free[:n_merge], free[n_merge : n_merge + n_complex]
    rows = []
    new_code = iter(f"E0118{i:04d}" for i in range(1, 10000))
    for i in range(n):
        if used[i]:
            continue
        if i in set(merged.tolist()):
            continue
        if i in set(complex_.tolist()):
            rows.append((next(new_code), names21[i], i, "X"))
        else:
            rows.append((codes21[i], names21[i], i, "U"))
    for s in chosen:
        parent = next(new_code)
        for child in (s, s + 1):
            rows.append((parent, names21[s][:-1] + "Z", child, "S"))
    for i in merged:
        for suffix in ("F", "G"):
            rows.append((next(new_code), names21[i][:-1] + suffix, int(i), "M"))
    table = pd.DataFrame(rows, columns=["lsoa11_code", "lsoa11_name", "lsoa21", "chgind"])
    return table.sort_values(["lsoa11_code", "lsoa21"], kind="stable", ignore_index=True)


def _write_lookups_and_iod(
    world: DemoWorld, out_dir: Path, rng: np.random.Generator
) -> dict[str, Path]:
    written = {}
    lsoa = world.lsoa
    areas = world.areas
    names21 = _lsoa_names(world)
    lad_codes = areas["lad"]["lad_code"].to_numpy()[lsoa["lad"]]
    lad_names = areas["lad"]["lad_name"].to_numpy()[lsoa["lad"]]
    sicbl = areas["sicbl"].iloc[lsoa["sicbl"].to_numpy()]
    icb = areas["icb"].iloc[lsoa["icb"].to_numpy()]
    exact = world.config.name == "england"

    lookup21 = pd.DataFrame(
        {
            "LSOA21CD": lsoa["lsoa_code"],
            "LSOA21NM": names21,
            "SICBL23CD": sicbl["sicbl_code"].to_numpy(),
            "SICBL23CDH": sicbl["sicbl_ods"].to_numpy(),
            "SICBL23NM": sicbl["sicbl_name"].to_numpy(),
            "ICB23CD": icb["icb_code"].to_numpy(),
            "ICB23CDH": icb["icb_ods"].to_numpy(),
            "ICB23NM": icb["icb_name"].to_numpy(),
            "LAD23CD": lad_codes,
            "LAD23NM": lad_names,
            "ObjectId": np.arange(1, len(lsoa) + 1),
        }
    )
    written["lsoa21_lookup"] = _write_csv(lookup21, out_dir / FILE_NAMES["lsoa21_lookup"])

    ages = world.age_bands
    pop = ages.sum(axis=1)
    z = lsoa["z"].to_numpy()
    ids25 = {
        "LSOA code (2021)": lsoa["lsoa_code"],
        "LSOA name (2021)": names21,
        "Local Authority District code (2024)": lad_codes,
        "Local Authority District name (2024)": lad_names,
    }
    cols = _iod_frame(ids25, z, _model.N_LSOA21_ENGLAND, exact, rng)
    grow = rng.uniform(0.99, 1.04, len(lsoa))
    cols["Total population: mid 2022"] = np.round(pop * grow).astype(np.int64)
    cols["Dependent Children aged 0-15: mid 2022"] = np.round(
        (ages[:, :3].sum(axis=1) + 0.2 * ages[:, 3]) * grow
    ).astype(np.int64)
    cols["Older population aged 60 and over: mid 2022"] = np.round(
        ages[:, 12:].sum(axis=1) * grow
    ).astype(np.int64)
    cols["Working age population 18-66 (for use with Employment Deprivation Domain): mid 2022"] = (
        np.round((0.6 * ages[:, 3] + ages[:, 4:13].sum(axis=1) + 0.4 * ages[:, 13]) * grow).astype(
            np.int64
        )
    )
    iod25 = pd.DataFrame(cols)
    iod25.columns = iod2025_header()  # positional: the official header has one truncated label
    written["iod2025"] = _write_csv(iod25, out_dir / FILE_NAMES["iod2025"])

    table11 = _lsoa11_table(world, rng)
    i21 = table11["lsoa21"].to_numpy()
    lookup11 = pd.DataFrame(
        {
            "LSOA11CD": table11["lsoa11_code"],
            "LSOA11NM": table11["lsoa11_name"],
            "LSOA21CD": lsoa["lsoa_code"].to_numpy()[i21],
            "LSOA21NM": names21[i21],
            "CHGIND": table11["chgind"],
            "LAD22CD": lad_codes[i21],
            "LAD22NM": lad_names[i21],
            "LAD22NMW": "",
            "ObjectId": np.arange(1, len(table11) + 1),
        }
    )
    written["lsoa11_lsoa21_lookup"] = _write_csv(
        lookup11, out_dir / FILE_NAMES["lsoa11_lsoa21_lookup"]
    )

    # IoD2019 on 2011 LSOAs: split parents average their children, merged parts share a child
    lsoa11 = table11.groupby("lsoa11_code", sort=True).agg(
        name=("lsoa11_name", "first"),
        first21=("lsoa21", "first"),
        chg=("chgind", "first"),
        n21=("lsoa21", "size"),
    )
    z11 = table11.assign(z=z[i21]).groupby("lsoa11_code", sort=True)["z"].mean().to_numpy()
    z11 = 0.95 * z11 + 0.3 * rng.normal(size=len(z11))
    pop_bands = table11.assign(**{f"b{k}": ages[i21, k] for k in range(ages.shape[1])})
    share = np.where(table11["chgind"].to_numpy() == "M", 0.5, 1.0)
    for k in range(ages.shape[1]):
        pop_bands[f"b{k}"] = pop_bands[f"b{k}"] * share * 0.97
    bands11 = (
        pop_bands.groupby("lsoa11_code", sort=True)[[f"b{k}" for k in range(ages.shape[1])]]
        .sum()
        .to_numpy()
    )
    first21 = lsoa11["first21"].to_numpy()
    ids19 = {
        "LSOA code (2011)": lsoa11.index.to_numpy(),
        "LSOA name (2011)": lsoa11["name"].to_numpy(),
        "Local Authority District code (2019)": lad_codes[first21],
        "Local Authority District name (2019)": lad_names[first21],
    }
    cols = _iod_frame(ids19, z11, _model.N_LSOA11_ENGLAND if not exact else len(z11), exact, rng)
    header19 = iod2019_header()
    cols[header19[-5]] = np.round(bands11.sum(axis=1)).astype(np.int64)
    cols[header19[-4]] = np.round(bands11[:, :3].sum(axis=1) + 0.2 * bands11[:, 3]).astype(np.int64)
    cols[header19[-3]] = np.round(0.8 * bands11[:, 3] + bands11[:, 4:12].sum(axis=1)).astype(
        np.int64
    )
    cols[header19[-2]] = np.round(bands11[:, 12:].sum(axis=1)).astype(np.int64)
    cols[header19[-1]] = np.round(
        0.6 * bands11[:, 3] + bands11[:, 4:12].sum(axis=1) + 0.5 * bands11[:, 12]
    ).astype(np.int64)
    written["iod2019"] = _write_csv(pd.DataFrame(cols)[header19], out_dir / FILE_NAMES["iod2019"])
    return written


def _write_census(world: DemoWorld, out_dir: Path, rng: np.random.Generator) -> dict[str, Path]:
    tables = _model.census_tables(world, rng)
    names = _lsoa_names(world)
    order = np.argsort(world.lsoa["lsoa_code"].to_numpy(), kind="stable")
    written = {}
    for table, (total, cats) in tables.items():
        if table == "ts038":
            cats = np.column_stack(
                [
                    cats[:, :2].sum(axis=1),
                    cats[:, 0],
                    cats[:, 1],
                    cats[:, 2:].sum(axis=1),
                    cats[:, 2],
                    cats[:, 3],
                ]
            )
        elif table == "ts021":
            parts, start = [], 0
            for width in (5, 3, 4, 5, 2):
                block = cats[:, start : start + width]
                parts += [block.sum(axis=1)[:, None], block]
                start += width
            cats = np.hstack(parts)
        elif table == "ts054":
            c = cats
            cats = np.column_stack(
                [
                    c[:, 0] + c[:, 1],
                    c[:, 0],
                    c[:, 1],
                    c[:, 2],
                    c[:, 2],
                    c[:, 3] + c[:, 4],
                    c[:, 3],
                    c[:, 4],
                    c[:, 5] + c[:, 6],
                    c[:, 5],
                    c[:, 6],
                    c[:, 7],
                ]
            )
        values = np.column_stack([total, cats])[order]
        frame = pd.DataFrame(values, columns=CENSUS_HEADERS[table])
        frame.insert(0, "geography code", world.lsoa["lsoa_code"].to_numpy()[order])
        frame.insert(0, "geography", names[order])
        frame.insert(0, "date", 2021)
        key = f"census_{table}"
        written[key] = _write_csv(frame, out_dir / FILE_NAMES[key])
    return written


def _write_core20plus_census(
    world: DemoWorld, out_dir: Path, rng: np.random.Generator
) -> dict[str, Path]:
    """Census TS039, TS029, TS045 and TS003 (Core20PLUS5 PLUS groups), Nomis layout."""
    lsoa = world.lsoa
    z, urban = lsoa["z"].to_numpy(), lsoa["urban"].to_numpy()
    ages = world.age_bands
    pop = ages.sum(axis=1)
    old = ages[:, 13:].sum(axis=1) / pop
    households = np.round(pop / rng.uniform(2.2, 2.5, len(pop))).astype(np.int64)

    def split(total: np.ndarray, probs: np.ndarray) -> np.ndarray:
        probs = np.clip(probs, 1e-4, None)
        return rng.multinomial(total, probs / probs.sum(axis=1, keepdims=True))

    carers = np.clip(0.09 + 0.01 * z + 0.1 * (old - 0.18), 0.03, 0.3)
    care = split(pop - ages[:, 0], np.column_stack([1 - carers, carers * 0.55, carers * 0.2,
                                                    carers * 0.25]))  # fmt: skip
    limited = np.clip(0.01 + 0.03 * urban + 0.01 * z, 0.001, 0.2)
    english = split(pop - ages[:, 0] * 3 // 5, np.column_stack(
        [1 - 3 * limited, limited, limited, 0.7 * limited, 0.3 * limited]))  # fmt: skip
    no_car = np.clip(0.22 + 0.1 * z + 0.15 * urban, 0.03, 0.8)
    cars = split(households, np.column_stack([no_car, 0.45 * (1 - no_car), 0.4 * (1 - no_car),
                                              0.15 * (1 - no_car)]))  # fmt: skip
    alone_old = np.clip(0.13 + 0.5 * (old - 0.18), 0.03, 0.4)
    comp = split(households, np.column_stack([alone_old, np.full(len(z), 0.17), 0.6 - alone_old,
                                              np.full(len(z), 0.23)]))  # fmt: skip
    counts = {
        "ts039": np.column_stack([care.sum(axis=1), care]),
        "ts029": np.column_stack(
            [english.sum(axis=1), english[:, 0], english[:, 1:].sum(axis=1), english[:, 1:]]
        ),  # fmt: skip
        "ts045": np.column_stack([cars.sum(axis=1), cars]),
        "ts003": np.column_stack([comp.sum(axis=1), comp[:, :2].sum(axis=1), comp]),
    }
    names = _lsoa_names(world)
    order = np.argsort(lsoa["lsoa_code"].to_numpy(), kind="stable")
    written = {}
    for table, values in counts.items():
        frame = pd.DataFrame(values[order], columns=CORE20PLUS_HEADERS[table])
        frame.insert(0, "geography code", lsoa["lsoa_code"].to_numpy()[order])
        frame.insert(0, "geography", names[order])
        frame.insert(0, "date", 2021)
        key = f"census_{table}"
        written[key] = _write_csv(frame, out_dir / FILE_NAMES[key])
    return written


def _write_boundaries(world: DemoWorld, out_dir: Path, rng: np.random.Generator) -> Path:
    lsoa = world.lsoa
    lon, lat = Transformer.from_crs(27700, 4326, always_xy=True).transform(
        lsoa["x"].to_numpy(), lsoa["y"].to_numpy()
    )
    guids = [
        "{" + str(uuid.UUID(bytes=rng.bytes(16), version=4)).upper() + "}" for _ in range(len(lsoa))
    ]
    gdf = gpd.GeoDataFrame(
        {
            "LSOA21CD": lsoa["lsoa_code"],
            "LSOA21NM": _lsoa_names(world),
            "LSOA21NMW": "",
            "BNG_E": np.round(lsoa["x"]).astype(np.int32),
            "BNG_N": np.round(lsoa["y"]).astype(np.int32),
            "LAT": np.round(lat, 5),
            "LONG": np.round(lon, 5),
            "GlobalID": guids,
        },
        geometry=world.lsoa_geometry,
        crs="EPSG:27700",
    )
    path = out_dir / FILE_NAMES["lsoa_boundaries"]
    gdf.to_file(path, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8")
    # the .dbf header stores the write date (bytes 1-3); pin it so files are byte-identical
    dbf = path.with_suffix(".dbf")
    raw = bytearray(dbf.read_bytes())
    raw[1:4] = bytes([125, 10, 1])
    dbf.write_bytes(bytes(raw))
    return path


# file families of the national files that carry the rest of England by appended rows (ePCN
# is an xlsx, rewritten with both worlds; no boundaries: only the demo ICS is mapped)
REST_OF_ENGLAND_FILES = tuple(
    name
    for name in FILE_NAMES
    # QOF: each year's files are written for the ICS and the rest together (_write_qof_year)
    if name not in ("epcn", "lsoa_boundaries", "readme", "ods_successors", "qof")
)


def _free_ranks(part: pd.DataFrame, main: pd.DataFrame, n_national: int) -> pd.DataFrame:
    """Move the rest of England's IoD ranks onto ranks the demo ICS does not use.

    National ranks are unique; each rank keeps its order and moves to the nearest free rank
    at or above it, and its decile follows the new rank.
    """
    out = part.copy()
    columns = list(out.columns)
    for i, column in enumerate(columns):
        if not column.startswith("Rank") and "Rank (" not in column:
            continue
        free = np.setdiff1d(np.arange(1, n_national + 1), main[column].to_numpy())
        order = np.argsort(out[column].to_numpy(), kind="stable")
        wanted = out[column].to_numpy()[order]
        start = np.searchsorted(free, wanted)
        # strictly increasing positions in ``free``, pulled back under its end
        slots = np.maximum.accumulate(start - np.arange(len(start))) + np.arange(len(start))
        slots -= max(0, int(slots[-1]) - (len(free) - 1))
        ranks = np.empty(len(order), dtype=np.int64)
        ranks[order] = free[slots]
        out[column] = ranks
        out[columns[i + 1]] = np.ceil(ranks * 10.0 / n_national).astype(np.int64).clip(1, 10)
    return out


def _append_rest_of_england(rest: DemoWorld, out_dir: Path, seed: int, ics: DemoWorld) -> None:
    """Append a coarse synthetic rest of England to the national files already written.

    The official national files cover every practice, PCN and LSOA in England; the demo's do
    too (registrations, ePCN, practice and PCN workforce with every role column, payments, IoD,
    Census; QOF in :func:`_write_qof_year`), so England's values (the comparator of every
    profile) come from the files.
    """
    streams = np.random.SeedSequence([seed, 20251001, 7919]).spawn(4)
    rngs = [np.random.default_rng(s) for s in streams]
    # its PCNs (ePCN memberships and PCN-employed staff), so England's whole team is national
    _write_epcn(ics, out_dir, rest)
    with tempfile.TemporaryDirectory() as tmp:
        part_dir = Path(tmp)
        parts: dict[str, Path] = {}
        parts.update(_write_registrations(rest, part_dir))
        parts["workforce"] = _write_workforce(rest, part_dir, rngs[0])
        parts["pcn_workforce"] = _write_pcn_workforce(
            rest, part_dir, np.random.default_rng([seed, 7919, 6]), first_id=900_000
        )
        parts["payments"] = _write_payments(rest, part_dir, rngs[1])
        parts.update(_write_lookups_and_iod(rest, part_dir, rngs[2]))
        parts.update(_write_census(rest, part_dir, rngs[3]))
        parts.update(_write_core20plus_census(rest, part_dir, np.random.default_rng([seed, 7919])))
        for name, n_national in (
            ("iod2025", _model.N_LSOA21_ENGLAND),
            ("iod2019", _model.N_LSOA11_ENGLAND),
        ):
            main = pd.read_csv(out_dir / FILE_NAMES[name])
            part = pd.read_csv(parts[name])
            _write_csv(_free_ranks(part, main, n_national), parts[name])
        for name in REST_OF_ENGLAND_FILES:
            text = parts[name].read_text("utf-8")
            body = text.split("\n", 1)[1]
            # new LSOA 2011 codes of the rest of England, apart from the demo ICS's
            body = body.replace("E0118", "E0128")
            with (out_dir / FILE_NAMES[name]).open("a", encoding="utf-8", newline="") as handle:
                handle.write(body)


HISTORY_MONTHS = 12  # monthly releases the demo ICS writes (the current one included)
#: The demo's QOF years: (years before the current one, end of the year, release folder or
#: None for the top level). Each year's lists are the practices' lists at its end (31 March).
QOF_YEARS = ((0, "2025-03-31", None), (1, "2024-03-31", "QOF-2023-24"))


def _months_before_current(date: str) -> int:
    """Whole months from ``date``'s month to the current release's (EXTRACT_DATE)."""
    then, now = pd.Timestamp(date), pd.Timestamp(EXTRACT_DATE)
    return (now.year - then.year) * 12 + now.month - then.month


def _write_qof_year(
    folder: Path,
    worlds: list[tuple[DemoWorld, bool]],
    seed: int,
    *,
    years_back: int = 0,
    recording: list[np.ndarray | None] | None = None,
) -> Path:
    """One QOF year's files (the members of its zip) for the ICS and the rest of England.

    Args:
        folder: Where the year's files go (the top level for the current year).
        worlds: ``(world, is_ics)`` as at the end of the year: the demo ICS first (planted
            under-recording), then the synthetic rest of England if any. Every world's
            registers follow the ICS's rates by age and deprivation, so the recorded-vs-expected
            model is fitted on every practice in England.
        seed: The demo seed (each year and world has its own stream).
        years_back: QOF years before the current one.
        recording: Each world's :func:`pophealth.demo._qof.persistent_recording`, or ``None``
            for an independent recording per year.

    Returns:
        The year's prevalence file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ics = worlds[0][0]
    reference = _qof.calibration(ics.single_age, ics.practices["z"].to_numpy(float))
    suffix = _qof.qof_year_suffix(years_back)
    with tempfile.TemporaryDirectory() as tmp:
        for index, (world, is_ics) in enumerate(worlds):
            target = folder if index == 0 else Path(tmp)
            # the current year keeps the streams it always had (ICS [seed, 2425], the rest
            # [seed, 2425, 7919]); an earlier year's stream is named by its own year
            stream = [seed, int(suffix)] + ([] if is_ics else [7919])
            _qof.write_qof(
                _practice_frame(world),
                world.single_age,
                world.practices["z"].to_numpy(dtype=float),
                target,
                np.random.default_rng(np.random.SeedSequence(stream)),
                _write_csv,
                reference=reference,
                plant=is_ics,
                years_back=years_back,
                recording=None if recording is None else recording[index],
            )
            if index == 0:
                continue
            # the rest of England's rows go into the year's national files (no second header)
            for member in sorted(Path(tmp).glob(f"*_{suffix}.csv")):
                destination = folder / member.name
                if member.name.startswith("MAPPING_INDICATORS"):
                    continue  # one indicator mapping per year
                if destination.exists():
                    with destination.open("a", encoding="utf-8", newline="") as handle:
                        handle.write(member.read_text("utf-8").split("\n", 1)[1])
                else:
                    shutil.copyfile(member, destination)
                member.unlink()
    return folder / f"PREVALENCE_{suffix}.csv"


def _write_qof_years(
    world: DemoWorld,
    rest: DemoWorld | None,
    out: Path,
    seed: int,
    growth: np.ndarray | None,
) -> Path:
    """The demo's QOF years: the current one at the top level, earlier ones in ``releases/``.

    With the release history's list growth (``growth``), every year in :data:`QOF_YEARS` is
    written from the lists at its end (31 March; the rest of England's lists drift by their own
    growth), with persistent practice recording, so the registers move plausibly between years
    and each year's list sizes agree with the registrations of its time. Practices that closed
    later (the planted merger's predecessor) are in every year they existed. Without a history
    (``growth`` None: the England-scale data) the one current year is written from today's lists
    as before.

    Returns:
        The current year's prevalence file (the file the registry's QOF entry names).
    """
    if growth is None:
        worlds = [(world, True)] + ([(rest, False)] if rest is not None else [])
        return _write_qof_year(out, worlds, seed)
    rest_growth = (
        np.random.default_rng([seed, 7919, 3]).normal(0.003, 0.002, len(rest.practices))
        if rest is not None
        else None
    )
    levels = [_qof.persistent_recording(len(world.practices), np.random.default_rng([seed, 4242]))]
    if rest is not None:
        levels.append(
            _qof.persistent_recording(
                len(rest.practices), np.random.default_rng([seed, 4242, 7919])
            )
        )
    for years_back, year_end, release in QOF_YEARS:
        months = _months_before_current(year_end)
        worlds = [(_drifted_world(world, months, growth), True)]
        if rest is not None:
            worlds.append((_drifted_world(rest, months, rest_growth), False))
        folder = out if release is None else out / "releases" / release
        _write_qof_year(folder, worlds, seed, years_back=years_back, recording=levels)
    return out / f"PREVALENCE_{_qof.YEAR_SUFFIX}.csv"


def _release_drift(rng: np.random.Generator, n: int, months: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-practice monthly list growth and the workforce's random walk of the release history.

    Returns:
        ``(growth, fte_walk)``: growth per month (mean +0.3%) and, per months back (row) and
        practice, the log FTE change from the current month (0 for the current month).
    """
    growth = rng.normal(0.003, 0.004, n)
    steps = rng.normal(0.0, 0.02, (months, n))
    steps[0] = 0.0
    return growth, np.cumsum(steps, axis=0)


def _drifted_world(
    world: DemoWorld, months_back: int, growth: np.ndarray, fte_walk: np.ndarray | None = None
) -> DemoWorld:
    """The world ``months_back`` months before the current release.

    Lists smaller or larger, workforce a random walk away (unchanged without ``fte_walk``), the
    PCN mover in its old PCN before its move.
    """
    factor = 1 - growth * months_back  # per practice; growth is per month
    reg = world.registrations
    patients = np.round(reg["patients"].to_numpy() * factor[reg["practice"].to_numpy()])
    registrations = reg.assign(patients=patients.astype(np.int64))
    totals = np.bincount(reg["practice"], weights=patients, minlength=len(factor)).astype(np.int64)
    # ages scaled to the new list and rounded by largest remainder, so they add up exactly
    now = world.single_age.reshape(len(factor), -1).astype(float)
    scaled = now * (totals / np.maximum(now.sum(axis=1), 1))[:, None]
    flat = np.floor(scaled)
    short = totals - flat.sum(axis=1)
    order = np.argsort(flat - scaled, axis=1, kind="stable")  # largest remainder first
    rank = np.empty_like(order)
    rank[np.arange(len(factor))[:, None], order] = np.arange(flat.shape[1])
    flat += rank < short[:, None]
    single = flat.astype(np.int64).reshape(world.single_age.shape)
    prac = world.practices.copy()
    prac["registered"] = totals
    prac["male"] = single[:, 0, :].sum(axis=1)
    prac["female"] = single[:, 1, :].sum(axis=1)
    if fte_walk is not None:
        for column in ("gp_fte", "nurse_fte", "dpc_fte", "admin_fte"):
            prac[column] = prac[column] * np.exp(fte_walk[months_back])
    period = pd.Timestamp(EXTRACT_DATE) - pd.DateOffset(months=months_back)
    moved = world.memberships[world.memberships["end_date"] == _model.MOVE_END_DATE]
    if period <= pd.Timestamp(_model.MOVE_END_DATE):
        prac.loc[moved["practice"].to_numpy(), "pcn"] = moved["pcn"].to_numpy()
    return dataclasses.replace(
        world, practices=prac, registrations=registrations, single_age=single
    )


def _write_release_history(
    world: DemoWorld,
    out: Path,
    drift: tuple[np.ndarray, np.ndarray],
    months: int,
    workforce_stream: np.random.SeedSequence,
    pcn_workforce_stream: np.random.SeedSequence | None = None,
) -> list[Path]:
    """Earlier monthly releases of registrations and workforce under ``releases/<YYYY-MM>/``.

    The practice workforce files carry every detailed role column (as the current month's), and
    when ``pcn_workforce_stream`` is given each release also has that month's PCN workforce file
    (same roles and shares as the current month, sized to the month's lists).

    Returns the release folders written.

    Lists drift by a practice-specific monthly growth (``drift``, from :func:`_release_drift`),
    the workforce by a random walk per practice, and one practice moves PCN in April 2025 (as in
    ePCN). The demo writes the LSOA file every month; NHS England publishes it quarterly.
    """
    growth, fte_walk = drift
    folders = []
    for back in range(1, months):
        period = pd.Timestamp(EXTRACT_DATE) - pd.DateOffset(months=back)
        folder = out / "releases" / period.strftime("%Y-%m")
        folder.mkdir(parents=True, exist_ok=True)
        past = _drifted_world(world, back, growth, fte_walk)
        _write_registrations(past, folder, extract_date=period.strftime("%Y-%m-%d"))
        folders.append(folder)
        _write_workforce(
            # the current month's stream: each practice keeps its data-source status
            past,
            folder,
            np.random.default_rng(workforce_stream),
            month=period.strftime("%B %Y"),
        )
        if pcn_workforce_stream is not None:
            _write_pcn_workforce(
                past,
                folder,
                np.random.default_rng(pcn_workforce_stream),
                month=period.strftime("%B %Y"),
            )
    return folders


# Strings that would run script, break out of an attribute, inject a link or climb folders if a
# name reached HTML or a path unescaped. Each sets ``document.title`` to ``31337`` if it ever runs.
HOSTILE_PAYLOADS = (
    "<script>document.title=31337</script>",
    '"><img src=x onerror=document.title=31337>',
    '<a href="javascript:document.title=31337">javascript:link</a>',
    "../../../tmp/pophealth-escape",
    "<svg onload=document.title=31337>",
    "' autofocus onfocus=document.title=31337 x='",
    "[md link](javascript:document.title=31337) <b>bold</b> & ampersand %{x} {{7*7}}",
)


def hostile_name(name: str, index: int) -> str:
    """``name`` prefixed with the ``index``-th hostile payload (cycled); keeps names unique."""
    return f"{HOSTILE_PAYLOADS[index % len(HOSTILE_PAYLOADS)]} {name}"


def _with_hostile_names(world: DemoWorld) -> DemoWorld:
    """A copy of ``world`` whose every name column carries a hostile payload."""

    def poison(frame: pd.DataFrame, column: str, offset: int) -> pd.DataFrame:
        out = frame.copy()
        out[column] = [hostile_name(str(n), offset + i) for i, n in enumerate(out[column])]
        return out

    areas = dict(world.areas)
    for offset, (level, column) in enumerate(
        (
            ("sicbl", "sicbl_name"),
            ("icb", "icb_name"),
            ("region", "region_name"),
            ("lad", "lad_name"),
        )
    ):
        areas[level] = poison(areas[level], column, offset)
    return dataclasses.replace(
        world,
        practices=poison(world.practices, "practice_name", 0),
        pcns=poison(world.pcns, "pcn_name", 1),
        areas=areas,
    )


def write_demo_dataset(
    out_dir: str | Path,
    seed: int = 42,
    scale: str = "ics",
    *,
    history_months: int | None = None,
    hostile_names: bool = False,
    _config_overrides: dict[str, object] | None = None,
) -> dict[str, Path]:
    """Write a synthetic demo dataset in the official file formats.

    Args:
        out_dir: folder to write into (created if missing); existing files of the same names are
            overwritten.
        seed: random seed; the same seed and scale give byte-identical files.
        scale: ``"ics"`` for one fictional Integrated Care System (~70 practices, ~640 LSOAs,
            ~600,000 patients, plus a ring of neighbouring-ICB LSOAs) or ``"england"`` for a
            fictional England of national size (~6,300 practices, 42 ICBs, 33,755 LSOAs).

        history_months: monthly releases of registrations and workforce to write, the current
            one included (earlier ones under ``releases/<YYYY-MM>/``); default 12 for the ICS
            and 0 (no history) for England, to keep the national benchmark's data unchanged.
        hostile_names: prefix every name-bearing field (practice, PCN, sub-ICB location, ICB,
            region, LAD and so LSOA names) with a hostile string from :data:`HOSTILE_PAYLOADS`
            (script tags, attribute break-outs, ``javascript:`` links, ``../`` paths), in the
            same official formats, to test that every name is escaped where it becomes HTML.
        _config_overrides: private; ``ScaleConfig`` fields to replace (tests use it to run a
            shrunken England quickly).

    Returns:
        Source name -> path of the written file (for the boundaries, the ``.shp``; its
        ``.shx``, ``.dbf``, ``.prj`` and ``.cpg`` sit beside it).

    Raises:
        ValueError: if ``scale`` is not ``"ics"`` or ``"england"``.
    """
    if scale not in _model.SCALES:
        raise ValueError(f"scale must be 'ics' or 'england', got {scale!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = _model.build_world(seed, scale, _config_overrides)
    if hostile_names:
        world = _with_hostile_names(world)
    # independent streams per file family, so changing one writer leaves the others unchanged
    streams = np.random.SeedSequence([seed, 20251001]).spawn(7)
    rngs = [np.random.default_rng(s) for s in streams]

    written: dict[str, Path] = {}
    written.update(_write_registrations(world, out))
    written["epcn"] = _write_epcn(world, out)
    written["workforce"] = _write_workforce(world, out, rngs[0])
    written["pcn_workforce"] = _write_pcn_workforce(world, out, rngs[6])
    written["payments"] = _write_payments(world, out, rngs[1])
    written.update(_write_lookups_and_iod(world, out, rngs[2]))
    written.update(_write_census(world, out, rngs[3]))
    written["lsoa_boundaries"] = _write_boundaries(world, out, rngs[4])
    # Core20PLUS5 census tables and QOF: their own streams, so every other file is unchanged
    written.update(_write_core20plus_census(world, out, np.random.default_rng([seed, 20210321])))
    rest = (
        _model.build_rest_of_england(seed, world)
        if scale == "ics" and not _config_overrides
        else None
    )
    if rest is not None:
        _append_rest_of_england(rest, out, seed, world)
    if history_months is None:
        history_months = HISTORY_MONTHS if scale == "ics" else 0
    # the release history's list growth and workforce walk (one stream: the files of earlier
    # months are the same with or without QOF history)
    drift = (
        _release_drift(rngs[5], len(world.practices), history_months)
        if history_months > 1
        else None
    )
    # QOF: two years (2023-24 in releases/, 2024-25 at the top) from the lists of their time for
    # the ICS demo with history; one year from today's lists otherwise
    written["qof"] = _write_qof_years(
        world, rest, out, seed, drift[0] if drift is not None and scale == "ics" else None
    )
    if drift is not None:
        # earlier releases sit under releases/<YYYY-MM>/ and are not in the returned mapping
        _write_release_history(world, out, drift, history_months, streams[0], streams[6])
    # ODS successor file; the ICS demo's planted merger rewrites the releases from its closure
    written["ods_successors"] = _successors.plant_merger(
        world, out, EXTRACT_DATE, merge=scale == "ics" and not _config_overrides
    )
    readme = out / FILE_NAMES["readme"]
    readme.write_text(
        README_TEXT.format(seed=seed, scale=scale, icb_code=world.areas["icb"]["icb_code"].iloc[0]),
        encoding="utf-8",
    )
    written["readme"] = readme
    return written
