"""Training-only task family of generator version 12: many functions seen once or twice.

Every continuation of the shipped v6 adapter that raised its choice among the training functions (v9, v10) cost it
held-out functions: more lessons on the same 13 training and 27 practice functions teach their names rather than
the skill of reading a function's description. ``fn-invented`` calls 42 further invented functions
(``functions.INVENTED_FUNCTIONS``), dealt so that each is called once before any twice, each asked in two
wordings that mostly avoid the words of its name, and offers it beside functions that take an argument of the same
name (a book among books, a contact among contacts) where any does — 31 of the 42 — drawn from the invented ones
and the earlier training pool. With a lesson or two per function and many functions, what the lessons share is
choosing by what a function does. As a training family it is an eval family too (train split, 4 tasks a seed). No
held-out function is called or offered, and no request asks for what one does (no flights, tables, local times or
meetings).
"""

from __future__ import annotations

import random
import weakref
from datetime import date, timedelta
from typing import Any

from ..function_tasks import SONGS
from ..functions import BY_NAME, INVENTED_FUNCTIONS
from .choosing import ROOMS, STOPS, Arguments, Lesson, practice_task
from .families import CITIES
from .tasks import Instance, family
from .verbs import POOL
from .world import World

LAKES = ["Lake Mira", "Silver Pond", "Black Lake", "Loon Lake"]
RESORTS = ["Alpenhof", "Snowridge", "Pine Peak", "White Valley", "Glacier Crest"]
BEACHES = ["Sandy Cove", "Gull Point", "Coral Bay", "North Shore Beach", "Shell Beach"]
STREETS = ["Elm Street", "Harbour Road", "Mill Lane", "King's Avenue", "Orchard Way"]
BOOKS = ["The Quiet Orchard", "Salt and Iron", "A Map of Small Rivers", "The Clockmaker's Dog", "Winter Letters"]
FILMS = ["Night Harbour", "The Paper Moon Club", "Glass Rivers", "Nine Lanterns", "Cold Summer"]
GYMS = ["FitHub Central", "Iron Yard", "Pulse Gym", "Riverside Fitness"]
PLANTS = ["fern", "cactus", "orchid", "basil plant", "peace lily", "rubber plant"]
PETS = ["Biscuit", "Luna", "Pepper", "Mochi", "Rex"]
SUBJECTS = ["maths", "history", "biology", "geography", "chemistry"]
SERVICES = ["StreamMax", "NewsDaily", "CloudBox", "FitPlus", "SongCloud"]
ITEMS = ["eggs", "oat milk", "coffee beans", "bin bags", "tomatoes", "rice"]
CONTACTS = ["Mum", "Sam", "Aunt Rosa", "Tom", "Ines"]
CHARITIES = ["Ocean Rescue", "Food For All", "Paws Shelter", "Clean Air Fund"]
FLOWERS = ["roses", "tulips", "sunflowers", "lilies"]
ADDRESSES = ["12 Elm Street", "4 Harbour Road", "88 Mill Lane", "31 Orchard Way"]
CAR_PARKS = ["Station Car Park", "Market Square Garage", "Riverside Lot"]
CLINICS = ["Hillside Clinic", "Park Surgery", "Central Health Centre"]


def _pick(**choices: list[Any]) -> Arguments:
    return lambda rng: {key: rng.choice(values) for key, values in choices.items()}


def _past_day(rng: random.Random) -> dict[str, Any]:
    """A day of 2026 before this one, as users write it and the functions take it (ISO)."""
    return {"date": (date(2026, 1, 1) + timedelta(days=rng.randrange(0, 330))).isoformat()}


def _with_number(key: str, low: int, high: int, **choices: list[Any]) -> Arguments:
    return lambda rng: {**{k: rng.choice(v) for k, v in choices.items()}, key: rng.randrange(low, high)}


def _phone(rng: random.Random) -> dict[str, Any]:
    return {"phone": f"+{rng.randrange(10, 99)} {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}"}


def _time(rng: random.Random) -> dict[str, Any]:
    return {"time": f"{rng.randrange(5, 10):02d}:{rng.choice(['00', '15', '30', '45'])}"}


LESSONS: dict[str, Lesson] = {
    "get_wind_speed": Lesson(
        ["What's the wind like in {city}?", "Is it too blustery to cycle in {city} today?"],
        "The wind in {city} is blowing at {wind_kmh} km/h.",
        _pick(city=CITIES),
        "wind_kmh",
    ),
    "get_air_pressure": Lesson(
        ["Tell me the barometric pressure for {city}.", "Has the air pressure dropped in {city} today?"],
        "The air pressure in {city} is {pressure_hpa} hPa.",
        _pick(city=CITIES),
        "pressure_hpa",
    ),
    "get_rent_price": Lesson(
        ["How expensive is it to rent a flat in {city}?", "What would a one-bedroom place cost me monthly in {city}?"],
        "A one-bedroom flat in {city} rents for about {monthly_rent} a month.",
        _pick(city=CITIES),
        "monthly_rent",
    ),
    "get_ice_thickness": Lesson(
        ["Is the ice on {lake} thick enough to skate on?", "How solid is the frozen surface of {lake}?"],
        "The ice on {lake} is {ice_cm} cm thick.",
        _pick(lake=LAKES),
        "ice_cm",
    ),
    "get_snow_depth": Lesson(
        ["Is there enough snow to ski at {resort}?", "How deep is the snow at {resort}?"],
        "There are {snow_cm} cm of snow at {resort}.",
        _pick(resort=RESORTS),
        "snow_cm",
    ),
    "get_water_temperature": Lesson(
        ["Is the sea warm enough for a swim at {beach}?", "How cold is the water at {beach}?"],
        "The sea at {beach} is {water_celsius} degrees.",
        _pick(beach=BEACHES),
        "water_celsius",
    ),
    "get_noise_level": Lesson(
        ["How loud is it on {street} right now?", "Is {street} quiet enough to sleep with the window open?"],
        "The noise on {street} is {decibels} dB.",
        _pick(street=STREETS),
        "decibels",
    ),
    "get_bin_collection": Lesson(
        ["When are the bins emptied on {street}?", "How many days until rubbish day on {street}?"],
        "The bins on {street} are collected in {days_until} days.",
        _pick(street=STREETS),
        "days_until",
    ),
    "report_pothole": Lesson(
        [
            "There's a huge hole in the road on {street}; let the council know.",
            "Tell the council about the pothole on {street}.",
        ],
        "Reported the pothole on {street} (report {report_number}).",
        _pick(street=STREETS),
        "report_number",
    ),
    "get_book_rating": Lesson(
        ["Is {book} worth reading?", "What do readers think of {book}?"],
        "Readers give {book} {stars} out of 5.",
        _pick(book=BOOKS),
        "stars",
    ),
    "get_library_due": Lesson(
        ["When do I have to take {book} back to the library?", "How long can I still keep {book}?"],
        "{book} is due back in {days_left} days.",
        _pick(book=BOOKS),
        "days_left",
    ),
    "renew_loan": Lesson(
        ["I need more time with {book}; extend it at the library.", "Keep {book} out on my library card for longer."],
        "Your loan of {book} is {status} for {weeks_added} more weeks.",
        _pick(book=BOOKS),
        "weeks_added",
    ),
    "get_film_score": Lesson(
        ["Did critics like {film}?", "How well was {film} reviewed?"],
        "Critics scored {film} {score} out of 100.",
        _pick(film=FILMS),
        "score",
    ),
    "get_song_length": Lesson(
        ["How long does {song} last?", "How many seconds is {song}?"],
        "{song} lasts {seconds} seconds.",
        _pick(song=[title for title, _ in SONGS]),
        "seconds",
    ),
    "get_gym_occupancy": Lesson(
        ["Is {gym} packed at the moment?", "How full is {gym} just now?"],
        "There are {people} people at {gym} now.",
        _pick(gym=GYMS),
        "people",
    ),
    "get_bikes_available": Lesson(
        ["Are there any bikes left at {station}?", "How many bikes are still parked at {station}?"],
        "There are {bikes} bikes free at {station}.",
        _pick(station=STOPS),
        "bikes",
    ),
    "get_step_count": Lesson(
        ["How far did I walk on {date}? Give me my steps.", "Did I hit ten thousand steps on {date}?"],
        "You walked {steps} steps on {date}.",
        _past_day,
        "steps",
    ),
    "get_sleep_hours": Lesson(
        ["How long did I sleep the night before {date}?", "Did I get enough rest before {date}?"],
        "You slept {hours} hours the night before {date}.",
        _past_day,
        "hours",
    ),
    "get_heart_rate": Lesson(
        ["What was my pulse at rest on {date}?", "How was my resting heart rate on {date}?"],
        "Your resting heart rate on {date} was {bpm} bpm.",
        _past_day,
        "bpm",
    ),
    "get_watering_interval": Lesson(
        ["How often should my {plant} get water?", "My {plant} looks dry. How many days can it go without water?"],
        "Your {plant} can go {days} days between waterings.",
        _pick(plant=PLANTS),
        "days",
    ),
    "get_vaccine_due": Lesson(
        ["When is {pet} due for the next jab?", "How long until {pet} has to see the vet for shots?"],
        "{pet}'s next vaccination is in {days} days.",
        _pick(pet=PETS),
        "days",
    ),
    "feed_pet": Lesson(
        ["Give {pet} {grams} grams of food.", "{pet} is hungry: put {grams} grams in the bowl."],
        "{pet} got {grams} grams of food.",
        _with_number("grams", 20, 200, pet=PETS),
        "grams",
    ),
    "get_homework_due": Lesson(
        [
            "When must the {school_subject} homework be handed in?",
            "How long do the kids have for their {school_subject} homework?",
        ],
        "The {school_subject} homework is due in {days} days.",
        _pick(school_subject=SUBJECTS),
        "days",
    ),
    "get_exam_grade": Lesson(
        ["What did I get in the {school_subject} exam?", "How did my last {school_subject} test go?"],
        "You scored {grade} in the {school_subject} exam.",
        _pick(school_subject=SUBJECTS),
        "grade",
    ),
    "cancel_subscription": Lesson(
        ["I don't want {service} any more; stop it.", "End my {service} plan."],
        "Your {service} subscription is {status}; refund {refund} dollars.",
        _pick(service=SERVICES),
        "refund",
    ),
    "get_subscription_cost": Lesson(
        ["How much am I paying for {service} each month?", "What does my {service} plan cost?"],
        "{service} costs you {monthly_price} dollars a month.",
        _pick(service=SERVICES),
        "monthly_price",
    ),
    "add_to_shopping_list": Lesson(
        ["We're out of {item}; note it for the next shop.", "Put {item} on the shopping list."],
        "Added {item} to your shopping list.",
        _pick(item=ITEMS),
        "item",
    ),
    "call_contact": Lesson(
        ["Ring {contact} for me.", "I want to speak to {contact} on the phone now."],
        "Calling {contact} now.",
        _pick(contact=CONTACTS),
        "contact",
    ),
    "transfer_money": Lesson(
        ["Send {amount} dollars to {contact}.", "Move {amount} dollars from my account to {contact}."],
        "Sent {amount} dollars to {contact} (transfer {transfer_id}).",
        _with_number("amount", 5, 400, contact=CONTACTS),
        "transfer_id",
    ),
    "share_location": Lesson(
        [
            "Let {contact} see where I am for the next {minutes} minutes.",
            "Show {contact} my position for {minutes} minutes.",
        ],
        "{contact} can see your location for {minutes} minutes.",
        _with_number("minutes", 10, 120, contact=CONTACTS),
        "minutes",
    ),
    "block_number": Lesson(
        ["Stop {phone} from calling me.", "I keep getting spam from {phone}; make it stop."],
        "{phone} is {status}.",
        _phone,
        "status",
    ),
    "donate": Lesson(
        ["Give {amount} dollars to {charity} from me.", "Make a {amount}-dollar donation to {charity}."],
        "You gave {amount} dollars to {charity} (receipt {receipt}).",
        _with_number("amount", 5, 300, charity=CHARITIES),
        "receipt",
    ),
    "open_window": Lesson(
        ["Let some fresh air into the {room}.", "It's stuffy in the {room}; open a window."],
        "The {room} window is {status}.",
        _pick(room=ROOMS),
        "status",
    ),
    "close_blinds": Lesson(
        ["It's too bright in the {room}; shut out the sun.", "Pull down the blinds in the {room}."],
        "The blinds in the {room} are {status}.",
        _pick(room=ROOMS),
        "status",
    ),
    "start_vacuum": Lesson(
        ["The {room} floor is dusty; send the robot in.", "Have the {room} hoovered."],
        "The robot vacuum is {status} the {room}.",
        _pick(room=ROOMS),
        "status",
    ),
    "preheat_oven": Lesson(
        ["Warm the oven up to {temperature} degrees.", "I'm baking at {temperature} degrees; get the oven ready."],
        "The oven is {status} to {temperature} degrees.",
        _with_number("temperature", 150, 250),
        "temperature",
    ),
    "start_dishwasher": Lesson(
        ["Run the dishwasher on {programme}.", "Start a {programme} wash of the dishes."],
        "The dishwasher is running the {programme} programme for {minutes} minutes.",
        _pick(programme=["eco", "quick", "intensive"]),
        "minutes",
    ),
    "mute_notifications": Lesson(
        ["I need {minutes} minutes without any pings on my phone.", "Silence my phone for {minutes} minutes."],
        "Notifications are {status} for {minutes} minutes.",
        _with_number("minutes", 15, 180),
        "minutes",
    ),
    "set_alarm": Lesson(
        ["Wake me up at {time}.", "I have to be up at {time} tomorrow."],
        "Your alarm is {status} for {time}.",
        _time,
        "time",
    ),
    "order_flowers": Lesson(
        ["Have some {flowers} delivered to {address}.", "Send a bunch of {flowers} to {address}."],
        "The {flowers} arrive at {address} in {arrives_in_hours} hours.",
        _pick(flowers=FLOWERS, address=ADDRESSES),
        "arrives_in_hours",
    ),
    "get_parking_fee": Lesson(
        ["How much does it cost to leave my car at {car_park}?", "What's the hourly rate at {car_park}?"],
        "Parking at {car_park} costs {fee_per_hour} an hour.",
        _pick(car_park=CAR_PARKS),
        "fee_per_hour",
    ),
    "get_clinic_wait": Lesson(
        ["How long is the wait at {clinic}?", "If I go to {clinic} now, how long until a doctor sees me?"],
        "The wait at {clinic} is about {minutes} minutes.",
        _pick(clinic=CLINICS),
        "minutes",
    ),
}

INVENTED = [f.name for f in INVENTED_FUNCTIONS]
# What the lessons may offer beside the called function: the invented functions and the earlier lessons' pool
# (training and practice functions), never a held-out one.
OFFERABLE = sorted({*INVENTED, *POOL})


def _decoys(rng: random.Random, target: str) -> list[str]:
    """Four others: up to three taking one of the target's arguments (a room among rooms), then any offerable."""
    keys = set(BY_NAME[target].parameters["properties"])
    others = [name for name in OFFERABLE if name != target]
    alike = [name for name in others if keys & set(BY_NAME[name].parameters["properties"])]
    chosen = rng.sample(alike, k=min(1 + rng.randrange(0, 3), len(alike)))
    chosen += rng.sample([name for name in others if name not in chosen], k=4 - len(chosen))
    offered = [target, *chosen]
    rng.shuffle(offered)
    return offered


# Each run of the family owns its generator (``training_instances`` and the eval suite make one per family and
# seed): the deal in progress is kept beside it, and goes with it.
_hands: weakref.WeakKeyDictionary[random.Random, list[str]] = weakref.WeakKeyDictionary()


def _dealt(rng: random.Random) -> str:
    """The next function of a deal: every invented function once, in an order drawn from ``rng``, then again. Drawn
    independently, 40 lessons called 24 to 28 of the 42 and some five times; dealt, each is called once or twice."""
    hand = _hands.setdefault(rng, [])
    if not hand:
        hand.extend(rng.sample(INVENTED, k=len(INVENTED)))
    return hand.pop()


@family("fn-invented", "function", "train", since=12)
def _fn_invented(rng: random.Random, world: World) -> Instance:
    return practice_task(rng, [_dealt(rng)], LESSONS, _decoys)
