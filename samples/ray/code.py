"""A sample Ray job for raypod: reads its parameters with the Bridge ParseKwargs parser."""

import argparse
import time

import ray


class ParseKwargs(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, dict())
        for value in values:
            key, value = value.split("=")
            getattr(namespace, self.dest)[key] = value


parser = argparse.ArgumentParser()
parser.add_argument("-k", "--kwargs", nargs="*", action=ParseKwargs)
args = parser.parse_args()
print(f"parameters: {args.kwargs}", flush=True)

ray.init()


@ray.remote
def square(x: int) -> int:
    time.sleep(0.1)
    return x * x


count = int(args.kwargs.get("count", "10"))
results = ray.get([square.remote(i) for i in range(count)])
print(f"sum of squares below {count}: {sum(results)}", flush=True)
with open("greeting.txt") as handle:
    print(f"greeting file says: {handle.read().strip()}", flush=True)
print(f"results would go to s3://{args.kwargs.get('s3_bucket')}/{args.kwargs.get('s3_prefix')}", flush=True)
