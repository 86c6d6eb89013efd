# Input for `black --diff` and `pygmentize`: ordinary code, deliberately not
# in black's style (quotes, spacing, wrapping), so black has a diff to print.
import os,sys
from collections import namedtuple


Point = namedtuple('Point', ['x','y'])

class Inventory( object ):
    '''A small inventory of items.'''
    def __init__(self,items = None):
        self.items = dict(items or {})
    def add(self,name,count=1):
        self.items[name]=self.items.get(name,0)+count
        return self.items[ name ]
    def total(self): return sum( self.items.values() )
    def report(self, out=sys.stdout):
        for name,count in sorted(self.items.items(), key=lambda kv:(-kv[1],kv[0])):
            print('%-20s %5d' % (name,count), file=out)


def main(argv = None):
    inv = Inventory({'apples':3,'pears':5})
    inv.add('plums', 2); inv.add("apples")
    if len(argv or []) > 1 and argv[1] == '--env': print(os.environ.get('HOME','?'))
    inv.report()
    return 0 if inv.total()>0 else 1

if __name__=='__main__':
    sys.exit(main(sys.argv))
