# strava-elt for a Prefect Docker work pool (prefect.yaml's Docker variant builds and pushes it
# with prefect-docker; docs/deploy.md, "Docker work pool"). The flows run from /opt/strava-elt.
FROM prefecthq/prefect:3.9.1-python3.11

WORKDIR /opt/strava-elt
COPY . .
# The project itself, not editable, with every extra (requirements-worker.txt): the SQL, the
# validation manifest and the dashboard's assets are inside the installed package.
RUN python -m pip install --no-cache-dir -r requirements-worker.txt
