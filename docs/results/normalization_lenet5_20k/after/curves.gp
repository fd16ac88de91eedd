# Cumulative prequential accuracy of the served model, one line per
# configuration. Written by //trainer:experiment; run it again with
#   gnuplot curves.gp
# in this folder.
$c0 << EOD
1000 0.852000
2000 0.850000
3000 0.846667
4000 0.845250
5000 0.847400
6000 0.850500
7000 0.852286
8000 0.853000
9000 0.856778
10000 0.858600
11000 0.860091
12000 0.862250
13000 0.864692
14000 0.866286
15000 0.867667
16000 0.870250
17000 0.871647
18000 0.872833
19000 0.874053
20000 0.874000
EOD
$c1 << EOD
1000 0.850000
2000 0.838500
3000 0.842000
4000 0.840500
5000 0.840600
6000 0.842000
7000 0.843143
8000 0.842625
9000 0.843778
10000 0.844600
11000 0.846000
12000 0.848167
13000 0.849769
14000 0.850429
15000 0.851000
16000 0.852938
17000 0.853353
18000 0.854222
19000 0.854368
20000 0.854500
EOD
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 1000,600 noenhanced
} else {
  set terminal png size 1000,600 noenhanced
}
set output "curves.png"
set title "Cumulative prequential accuracy of the served model"
set xlabel "streamed examples"
set ylabel "cumulative prequential accuracy"
set grid
set key outside right top
plot $c0 using 1:2 with linespoints linetype 1 dashtype 1 pointtype 7 pointsize 0.7 title "proactive t=8", \
     $c1 using 1:2 with linespoints linetype 2 dashtype 1 pointtype 5 pointsize 0.7 title "t=8 topk 0.1%"
