"""Job metadata in-process (Flask's test client, the real Redis): shown in the job
resource, kept out of what training reads, and `GET /v1/jobs?metadata.KEY=VALUE` paging
through every match exactly once with a bounded look per page."""

import pytest

from service.worker import jobs

from .service_helpers import small_spec


def submit(client, **metadata):
    spec = small_spec(metadata=metadata) if metadata else small_spec()
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def every_page(client, query):
    """(ids of every page in turn, the number of pages)."""
    ids, pages, cursor = [], 0, None
    while True:
        page = client.get(f"/v1/jobs?{query}" + (f"&cursor={cursor}" if cursor else ""))
        assert page.status_code == 200, page.get_json()
        body = page.get_json()
        ids += [job["id"] for job in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages


def test_metadata_is_shown_in_the_job_resource_and_not_in_its_spec(client, worker_env):
    job = submit(client, team="vision", run="7")
    assert job["metadata"] == {"team": "vision", "run": "7"}
    assert "metadata" not in job["spec"]
    jobs.run_training(job["id"])  # training ignores it
    done = client.get(f"/v1/jobs/{job['id']}").get_json()
    assert done["status"] == "succeeded" and done["metadata"] == job["metadata"]
    assert submit(client)["metadata"] == {}


@pytest.fixture
def scanning_app(make_app):
    return make_app(LIST_SCAN_LIMIT=7)


def test_filters_page_through_every_match_once_looking_at_a_bounded_number(scanning_app):
    client = scanning_app.test_client()
    made = []
    for i in range(40):
        team = "a" if i % 3 == 0 else "b"
        made.append((submit(client, team=team, parity=str(i % 2))["id"], team, i % 2))
    newest_first = list(reversed(made))
    ids, pages = every_page(client, "limit=3&metadata.team=a")
    assert ids == [job for job, team, _ in newest_first if team == "a"]
    assert pages >= 40 // 7  # each page looked at 7 jobs at most
    ids, _ = every_page(client, "limit=2&metadata.team=a&metadata.parity=0")
    assert ids == [job for job, team, parity in newest_first if team == "a" and parity == 0]
    ids, _ = every_page(client, "metadata.team=a&metadata.team=b")  # both at once: none
    assert ids == []
    client.post(f"/v1/jobs/{made[0][0]}/cancel")
    ids, _ = every_page(client, "status=cancelled&metadata.team=a")
    assert ids == [made[0][0]]
    ids, _ = every_page(client, "status=queued&metadata.team=a")
    assert made[0][0] not in ids and len(ids) == 13


def test_an_unfiltered_list_still_pages_as_before(client):
    made = [submit(client, team="x")["id"] for _ in range(5)]
    ids, pages = every_page(client, "limit=2")
    assert ids == list(reversed(made)) and pages == 3
