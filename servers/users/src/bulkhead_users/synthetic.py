"""A deterministic synthetic company directory, for the bundled default, tests and benchmarks.

`python -m bulkhead_users.synthetic 600 > directory.json` writes the bundled file.
"""

import json
import random
import sys
from datetime import date, timedelta

from bulkhead_users.directory import Record

__all__ = ["generate"]

GIVEN = [
    "Ada",
    "Alan",
    "Amara",
    "Anika",
    "Ben",
    "Bianca",
    "Carlos",
    "Chen",
    "Chloe",
    "Dara",
    "Diego",
    "Elena",
    "Emeka",
    "Eva",
    "Farah",
    "Felix",
    "Grace",
    "Hana",
    "Hugo",
    "Ines",
    "Ivan",
    "Jamal",
    "Jia",
    "Jonas",
    "Kai",
    "Kenji",
    "Lara",
    "Leila",
    "Liam",
    "Lucia",
    "Maya",
    "Mateo",
    "Mei",
    "Nadia",
    "Noah",
    "Nora",
    "Omar",
    "Oscar",
    "Priya",
    "Rafael",
    "Rosa",
    "Sami",
    "Sara",
    "Soren",
    "Tariq",
    "Tomas",
    "Uma",
    "Valentina",
    "Wei",
    "Yara",
    "Yusuf",
    "Zoe",
    "José",
    "Zoë",
]
FAMILY = [
    "Adams",
    "Andersen",
    "Baptiste",
    "Becker",
    "Chandra",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fernandes",
    "Fischer",
    "Garcia",
    "Haddad",
    "Hansen",
    "Ito",
    "Jensen",
    "Kaur",
    "Kim",
    "Kowalski",
    "Larsen",
    "Lopez",
    "Mbeki",
    "Meyer",
    "Moreau",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Petrov",
    "Quinn",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Singh",
    "Tanaka",
    "Torres",
    "Varga",
    "Wagner",
    "Walsh",
    "Yamamoto",
    "Zhang",
    "Müller",
]
DEPARTMENTS = {
    "Engineering": ("Software Engineer", "Senior Software Engineer", "Staff Engineer", "Engineering Manager"),
    "Product": ("Product Manager", "Senior Product Manager", "Product Designer", "Head of Product"),
    "Sales": ("Account Executive", "Sales Engineer", "Sales Manager", "Business Development Rep"),
    "Marketing": ("Marketing Manager", "Content Strategist", "Growth Analyst", "Brand Designer"),
    "Finance": ("Accountant", "Financial Analyst", "Controller", "Payroll Specialist"),
    "People": ("Recruiter", "People Partner", "Learning Specialist", "People Operations Lead"),
    "Support": ("Support Engineer", "Support Specialist", "Support Manager", "Technical Writer"),
    "Security": ("Security Engineer", "Security Analyst", "Compliance Manager", "Security Architect"),
}
LOCATIONS = ("Berlin", "Lisbon", "London", "New York", "Singapore", "Toronto", "Remote")
GROUPS = (
    "all-hands",
    "on-call",
    "platform-guild",
    "frontend-guild",
    "data-council",
    "security-champions",
    "mentors",
    "new-hires",
    "leadership",
    "release-team",
    "accessibility",
    "green-team",
)


def generate(count: int = 600, seed: int = 7) -> list[Record]:
    """`count` people in a consistent hierarchy: a CEO, department heads, managers, staff."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not secrets
    people: list[Record] = []
    used: set[str] = set()

    def person(index: int, department: str, title: str, manager: str | None) -> Record:
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        base = f"{given}.{family}".lower().encode("ascii", "ignore").decode()
        username = base
        suffix = 2
        while username in used:
            username, suffix = f"{base}{suffix}", suffix + 1
        used.add(username)
        start = date(2012, 1, 1) + timedelta(days=rng.randrange(0, 365 * 13))
        groups = sorted({"all-hands", *rng.sample(GROUPS[1:], rng.randrange(0, 4))})
        return {
            "id": f"u{index:05d}",
            "username": username,
            "email": f"{username}@example.com",
            "display_name": f"{given} {family}",
            "given_name": given,
            "family_name": family,
            "title": title,
            "department": department,
            "location": rng.choice(LOCATIONS),
            "manager_id": manager,
            "groups": groups,
            "employment_type": "contractor" if rng.random() < 0.08 else "employee",
            "start_date": start.isoformat(),
            "phone": f"+1-555-{rng.randrange(0, 10000):04d}",
            "personal_address": f"{rng.randrange(1, 300)} {rng.choice(FAMILY)} Street",
        }

    ceo = person(1, "Leadership", "Chief Executive Officer", None)
    ceo["groups"] = ["all-hands", "leadership"]
    people.append(ceo)
    heads: dict[str, str] = {}
    for department in DEPARTMENTS:
        head = person(len(people) + 1, department, f"VP of {department}", ceo["id"])
        head["groups"] = sorted({*head["groups"], "leadership"})
        people.append(head)
        heads[department] = head["id"]
    managers: dict[str, list[str]] = {department: [] for department in DEPARTMENTS}
    while len(people) < count:
        department = rng.choice(list(DEPARTMENTS))
        titles = DEPARTMENTS[department]
        team = managers[department]
        if not team or (len(team) < 6 and rng.random() < 0.12):
            boss = rng.choice([heads[department], *team[:2]])
            record = person(len(people) + 1, department, titles[-1], boss)
            team.append(record["id"])
        else:
            record = person(len(people) + 1, department, rng.choice(titles[:-1]), rng.choice(team))
        people.append(record)
    return people


if __name__ == "__main__":
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    sys.stdout.write(json.dumps({"users": generate(total)}, indent=1, ensure_ascii=False) + "\n")
